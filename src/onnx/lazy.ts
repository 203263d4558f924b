/**
 * Reading a model without its large tensor payloads, so quantizing a model needs memory for the
 * output, not for the input too (reading a 378 MB file alone costs ~421 MB of RSS; docs/facts.md,
 * "Memory when reading a model").
 *
 * readModelLazy skims the file with positional reads: every message on the way to a tensor
 * (ModelProto.graph → GraphProto.initializer / node → AttributeProto.t / g / tensors / graphs →
 * TensorProto, subgraphs included) is rebuilt, other fields are copied byte for byte, and a raw_data
 * of at least `threshold` bytes is replaced by an external-data reference to the model file itself:
 * location = the file's base name, offset = where the bytes are in it, length. The result decodes like
 * any model with external data (src/onnx/external.ts can load it), and the quantize step reads such a
 * tensor only when it quantizes or converts it (tensorBytesOf), one at a time.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CompressError } from '../errors.js';
import { decodeModel } from './codec.js';
import { checkLocation, externalRef } from './external.js';
import { openForReading } from './io.js';
import { readFullAt } from './paths.js';
import type { ModelProto, TensorProto } from './types.js';
import { forEachTensor } from './walk.js';
import { cloneModel } from './edit.js';
import { tensorFloat32 } from './tensor.js';

const WINDOW = 1 << 20;

/** Byte access to a file through a 1 MB window of positional reads. */
class FileBytes {
  private buf = Buffer.allocUnsafe(WINDOW);
  private start = 0;
  private end = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
  ) {}
  byte(pos: number): number {
    if (pos < this.start || pos >= this.end) this.fill(pos);
    return this.buf[pos - this.start];
  }
  private fill(pos: number): void {
    const n = readSync(this.fd, this.buf, 0, Math.min(WINDOW, this.size - pos), pos);
    this.start = pos;
    this.end = pos + n;
  }
  slice(pos: number, len: number): Uint8Array {
    const out = Buffer.allocUnsafe(len);
    if (readFullAt(this.fd, out, pos) < len) throw new RangeError('unexpected end of file');
    return out;
  }
  varint(pos: number): [number, number] {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte(pos++);
      v += (b & 0x7f) * mul;
      if (b < 0x80) return [v, pos];
      mul *= 128;
    }
    throw new RangeError('malformed varint');
  }
}

type Chunks = Uint8Array[];

function varintBytes(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 128) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Uint8Array.from(out);
}

function lenField(field: number, chunks: Chunks): Chunks {
  const len = chunks.reduce((s, c) => s + c.length, 0);
  return [varintBytes((field << 3) | 2), varintBytes(len), ...chunks];
}

function strEntry(key: string, value: string): Chunks {
  const k = Buffer.from(key);
  const v = Buffer.from(value);
  return [varintBytes((1 << 3) | 2), varintBytes(k.length), k, varintBytes((2 << 3) | 2), varintBytes(v.length), v];
}

type Kind = 'model' | 'graph' | 'node' | 'attribute' | 'tensor' | 'training';

/** Fields that lead to tensors: field number → the kind of message it holds. */
const NESTED: Record<Kind, Record<number, Kind>> = {
  model: { 7: 'graph', 20: 'training' },
  training: { 1: 'graph', 2: 'graph' },
  graph: { 1: 'node', 5: 'tensor' },
  node: { 5: 'attribute' },
  attribute: { 5: 'tensor', 6: 'graph', 10: 'tensor', 11: 'graph' },
  tensor: {},
};

export interface LazyReadOptions {
  /** raw_data payloads of at least this many bytes stay on disk (default 4096). */
  threshold?: number;
}

/** Reads `file` leaving large tensor payloads on disk (see the file comment). */
export function readModelLazy(file: string, opts: LazyReadOptions = {}): ModelProto {
  const threshold = opts.threshold ?? 4096;
  const location = basename(file);
  const fd = openForReading(file);
  try {
    const f = new FileBytes(fd, fstatSync(fd).size);
    const skim = (kind: Kind, start: number, end: number): Chunks => {
      const out: Chunks = [];
      let external: { offset: number; length: number } | undefined;
      let pos = start;
      // Fields copied byte for byte are copied in runs (one read per run, not per field: a message of
      // millions of small fields must not cost a read each).
      let run = start;
      const flush = (upTo: number) => {
        if (upTo > run) out.push(f.slice(run, upTo - run));
      };
      while (pos < end) {
        const fieldStart = pos;
        const [tag, p1] = f.varint(pos);
        pos = p1;
        const field = Math.floor(tag / 8);
        const wire = tag & 7;
        // As the decoder would say, but now: a run of zero bytes is a field-0 varint per byte, and
        // skimming 65 MB of them took minutes before the decoder got to see the first.
        if (field === 0) throw new CompressError('model', 'field number 0', { file, offset: fieldStart });
        if (wire === 0) [, pos] = f.varint(pos);
        else if (wire === 1) pos += 8;
        else if (wire === 5) pos += 4;
        else if (wire === 2) {
          const [len, p2] = f.varint(pos);
          const payload = p2;
          pos = p2 + len;
          if (pos > end) throw new CompressError('model', 'a length-delimited field runs past its message', { file, offset: fieldStart });
          const nested = NESTED[kind][field];
          if (nested) {
            flush(fieldStart);
            out.push(...lenField(field, skim(nested, payload, pos)));
            run = pos;
            continue;
          }
          if (kind === 'tensor' && field === 9 && len >= threshold) {
            flush(fieldStart);
            external = { offset: payload, length: len };
            run = pos;
            continue;
          }
        } else throw new CompressError('model', `unsupported wire type ${wire}`, { file, offset: fieldStart });
        if (pos > end) throw new CompressError('model', 'a field runs past its message', { file, offset: fieldStart });
      }
      flush(end);
      if (external) {
        for (const [k, v] of [['location', location], ['offset', String(external.offset)], ['length', String(external.length)]]) out.push(...lenField(13, strEntry(k, v)));
        out.push(varintBytes(14 << 3), varintBytes(1));
      }
      return out;
    };
    const chunks = skim('model', 0, f.size);
    const model = decodeModel(Buffer.concat(chunks), file);
    forEachTensor(model, (t) => {
      if (isLazy(t, file)) t.lazyFile = file;
    });
    return model;
  } finally {
    closeSync(fd);
  }
}

/**
 * The raw bytes of a tensor: its raw_data, or, for external data, read from the file its reference
 * names (relative to `dir`), into `into` when that is large enough (a reusable scratch buffer).
 */
export function externalBytes(t: TensorProto, dir: string, into?: Uint8Array): Uint8Array {
  const ref = externalRef(t);
  checkLocation(ref.location);
  const path = join(dir, ref.location);
  const fd = openSync(path, 'r');
  try {
    const length = ref.length ?? fstatSync(fd).size - ref.offset;
    const out = into && into.length >= length ? into.subarray(0, length) : new Uint8Array(length);
    if (readFullAt(fd, out, ref.offset) < length) throw new CompressError('model', `tensor "${t.name ?? ''}" reads past the end of ${ref.location}`, { file: path });
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Whether a tensor's data is an external reference into `modelFile` itself (what readModelLazy makes). */
export function isLazy(t: TensorProto, modelFile: string): boolean {
  if (t.dataLocation !== 1) return false;
  return t.externalData.find((e) => e.key === 'location')?.value === basename(modelFile);
}

/** Replaces a lazy tensor's reference by its bytes (in place). */
export function loadLazy(t: TensorProto, modelFile: string): void {
  t.rawData = externalBytes(t, dirname(modelFile));
  t.dataLocation = undefined;
  t.externalData = [];
  t.lazyFile = undefined;
}

let scratch = new Float32Array(0);

/**
 * A float32 weight's values without keeping a copy: a view of raw_data when it is aligned; else (raw
 * data at an odd offset, or data still on disk) the values in a scratch buffer reused by the next call,
 * so use them before reading another weight. Other float types are converted (a new array).
 */
export function weightFloats(t: TensorProto, modelDir: string): Float32Array {
  if (t.dataType === 1) {
    const n = t.dims.reduce<number>((a, d) => a * Number(d), 1);
    if (t.dataLocation === 1 || (t.rawData && t.rawData.byteOffset % 4 !== 0 && t.rawData.length === n * 4)) {
      // The stored length is checked before the scratch buffer grows to the dims: dims from a malformed
      // file (2^62 elements) must not reach an allocation.
      const stored = t.dataLocation === 1 ? externalRef(t).length : t.rawData!.length;
      if ((stored !== undefined && stored !== n * 4) || !Number.isSafeInteger(n * 4)) {
        const expected = t.dims.reduce<bigint>((a, d) => a * BigInt(d), 4n);
        throw new CompressError('model', `tensor "${t.name ?? ''}" (float32, dims [${t.dims.join(', ')}]) has ${stored} bytes of raw data, expected ${expected}`);
      }
      if (scratch.length < n) scratch = new Float32Array(n);
      const bytes = new Uint8Array(scratch.buffer, 0, n * 4);
      if (t.dataLocation === 1) externalBytes(t, modelDir, bytes);
      else bytes.set(t.rawData!);
      return scratch.subarray(0, n);
    }
  }
  return tensorFloat32(t);
}

/** The model with every lazily read tensor's bytes in memory (a copy; for onnxruntime, which reads bytes). */
export function withLazyLoaded(model: ModelProto): ModelProto {
  let lazy = false;
  forEachTensor(model, (t) => void (t.lazyFile && (lazy = true)));
  if (!lazy) return model;
  const out = cloneModel(model);
  forEachTensor(out, (t) => void (t.lazyFile && loadLazy(t, t.lazyFile)));
  return out;
}
