/**
 * Table-driven protobuf codec for onnx.proto messages (tables in schema.ts).
 *
 * Decoding keeps bytes fields as views into the input; encoding returns a list of chunks in which
 * large byte fields are those same views. For a file written by a canonical protobuf writer (fields in
 * number order, unknown fields last) decode → encode reproduces the input byte for byte.
 */
import { CompressError } from '../errors.js';
import { messages, type FieldDef, type MessageDef } from './schema.js';
import type { ModelProto, TensorProto, Wire } from './types.js';
import { ChunkWriter, WireReader, WireType, int64Size, stringSize, varintSize, type Int64 } from './wire.js';

/** Nested messages deeper than this are refused (a graph in an If in a Loop … is ~3 levels each). */
const MAX_DEPTH = 100;

type Msg = Record<string, unknown> & Wire;

export function decodeModel(buf: Uint8Array, file?: string): ModelProto {
  return decodeMessage(messages.ModelProto, buf, file) as unknown as ModelProto;
}

export function decodeTensor(buf: Uint8Array, file?: string): TensorProto {
  return decodeMessage(messages.TensorProto, buf, file) as unknown as TensorProto;
}

export function decodeMessage(def: MessageDef, buf: Uint8Array, file?: string): Msg {
  const r = new WireReader(buf, file);
  try {
    return readMessage(r, def, buf.length, 0);
  } catch (e) {
    if (e instanceof CompressError) throw e;
    // RangeError from a DataView or similar: still a model error with a position, never a crash.
    throw new CompressError('model', `cannot decode ${def.name}: ${(e as Error).message}`, { file, offset: r.pos });
  }
}

function newMessage(def: MessageDef): Msg {
  const m: Msg = {};
  for (const f of def.fields) m[f.name] = f.repeated && !f.typed ? [] : undefined;
  return m;
}

function expectedWireType(f: FieldDef): number {
  switch (f.kind) {
    case 'i32':
    case 'i64':
    case 'u64':
      return WireType.VARINT;
    case 'f32':
      return WireType.I32;
    case 'f64':
      return WireType.I64;
    default:
      return WireType.LEN;
  }
}

function readScalar(r: WireReader, f: FieldDef, end: number): unknown {
  switch (f.kind) {
    case 'i32':
      return r.int32();
    case 'i64':
      return r.int64(true);
    case 'u64':
      return r.int64(false);
    case 'f32':
      return r.float();
    case 'f64':
      return r.double();
    case 'str':
      return r.string(end);
    default:
      return r.bytes(end);
  }
}

function readMessage(r: WireReader, def: MessageDef, end: number, depth: number): Msg {
  if (depth > MAX_DEPTH) r.fail(`messages nested deeper than ${MAX_DEPTH} levels`);
  const m = newMessage(def);
  let typedParts: Map<FieldDef, unknown[]> | undefined;
  while (r.pos < end) {
    const tagAt = r.pos;
    const tag = r.uint32();
    const no = tag >>> 3;
    const wt = tag & 7;
    if (no === 0) r.fail('field number 0', tagAt);
    const f = def.byNo[no];
    if (!f) {
      r.skip(wt, end);
      (m.$unknown ??= []).push(r.buf.subarray(tagAt, r.pos));
      continue;
    }
    const want = expectedWireType(f);
    if (f.kind === 'msg') {
      if (wt !== WireType.LEN) r.fail(`${def.name}.${f.name}: expected wire type 2, found ${wt}`, tagAt);
      const subEnd = r.lengthEnd(end);
      const sub = readMessage(r, f.msg!, subEnd, depth + 1);
      if (r.pos !== subEnd) r.fail(`${def.name}.${f.name}: message ends past its length`, tagAt);
      if (f.repeated) (m[f.name] as unknown[]).push(sub);
      else m[f.name] = sub; // proto semantics would merge repeated singular messages; last wins is enough here
      continue;
    }
    if (f.repeated && wt === WireType.LEN && want !== WireType.LEN) {
      // Packed run of numbers.
      const runEnd = r.lengthEnd(end);
      if (!f.packed) (m.$packed ??= {})[f.no] = true;
      const values = readPacked(r, f, runEnd);
      if (f.typed) ((typedParts ??= new Map()).get(f) ?? typedParts.set(f, []).get(f)!).push(values);
      else {
        const arr = m[f.name] as unknown[];
        for (const v of values as Iterable<unknown>) arr.push(v);
      }
      continue;
    }
    if (wt !== want) r.fail(`${def.name}.${f.name}: expected wire type ${want}, found ${wt}`, tagAt);
    const v = readScalar(r, f, end);
    if (f.repeated) {
      if (f.packed && want !== WireType.LEN) (m.$packed ??= {})[f.no] = false;
      if (f.typed) ((typedParts ??= new Map()).get(f) ?? typedParts.set(f, []).get(f)!).push(v);
      else (m[f.name] as unknown[]).push(v);
    } else m[f.name] = v;
  }
  if (r.pos !== end) r.fail(`${def.name}: field runs past the end of the message`);
  if (typedParts) for (const [f, parts] of typedParts) m[f.name] = joinTyped(f, parts);
  return m;
}

type TypedArray = Float32Array | Float64Array | Int32Array;
const typedCtors = { Float32Array, Float64Array, Int32Array };

/** Packed numbers: fixed-width ones as a typed array (a view when aligned), varints as a JS array. */
function readPacked(r: WireReader, f: FieldDef, end: number): TypedArray | unknown[] {
  const len = end - r.pos;
  if (f.kind === 'f32' || f.kind === 'f64') {
    const width = f.kind === 'f32' ? 4 : 8;
    if (len % width) r.fail(`${f.name}: packed length ${len} is not a multiple of ${width}`);
    const Ctor = f.kind === 'f32' ? Float32Array : Float64Array;
    const abs = r.buf.byteOffset + r.pos;
    const out =
      abs % width === 0
        ? new Ctor(r.buf.buffer as ArrayBuffer, abs, len / width)
        : new Ctor(copyBytes(r.buf.subarray(r.pos, end)).buffer as ArrayBuffer, 0, len / width); // unaligned: copy
    r.pos = end;
    return f.typed ? out : Array.from(out);
  }
  const out: unknown[] = [];
  while (r.pos < end) out.push(readScalar(r, f, end));
  if (r.pos !== end) r.fail(`${f.name}: packed varints run past their length`);
  return f.typed ? Int32Array.from(out as number[]) : out;
}

/** A fresh copy (Buffer#slice would return a view). */
export function copyBytes(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}

function joinTyped(f: FieldDef, parts: unknown[]): TypedArray {
  const Ctor = typedCtors[f.typed!];
  if (parts.length === 1 && parts[0] instanceof Ctor) return parts[0] as TypedArray;
  let n = 0;
  for (const p of parts) n += typeof p === 'number' ? 1 : (p as TypedArray).length;
  const out = new Ctor(n);
  let i = 0;
  for (const p of parts) {
    if (typeof p === 'number') out[i++] = p;
    else {
      out.set(p as TypedArray, i);
      i += (p as TypedArray).length;
    }
  }
  return out;
}

// ---------------------------------------------------------------- encoding

export interface Encoded {
  chunks: Uint8Array[];
  byteLength: number;
}

/** Protobuf messages cannot exceed 2 GiB; bigger models must move tensors to external data. */
export const MAX_MESSAGE_BYTES = 2 ** 31 - 1;

export function encodeModel(model: ModelProto): Encoded {
  return encodeMessage(messages.ModelProto, model as unknown as Msg);
}

export function encodeTensor(t: TensorProto): Encoded {
  return encodeMessage(messages.TensorProto, t as unknown as Msg);
}

export function encodeMessage(def: MessageDef, m: Msg): Encoded {
  const sizes = new Map<object, number>();
  const byteLength = sizeOf(def, m, sizes);
  const w = new ChunkWriter();
  writeMessage(w, def, m, sizes);
  return { chunks: w.finish(), byteLength };
}

/** Concatenates an encoding into one buffer (for onnxruntime's InferenceSession.create(bytes)). */
export function joinChunks(e: Encoded): Uint8Array {
  const out = Buffer.allocUnsafe(e.byteLength);
  let at = 0;
  for (const c of e.chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export function encodeModelToBytes(model: ModelProto): Uint8Array {
  return joinChunks(encodeModel(model));
}

function isPacked(f: FieldDef, m: Msg): boolean {
  return m.$packed?.[f.no] ?? f.packed;
}

function scalarSize(f: FieldDef, v: unknown): number {
  switch (f.kind) {
    case 'i32':
      return varintSize(v as number); // negative int32 take 10 bytes, as protobuf writes them
    case 'i64':
    case 'u64':
      return int64Size(v as Int64);
    case 'f32':
      return 4;
    case 'f64':
      return 8;
    case 'str': {
      const n = stringSize(v as string);
      return varintSize(n) + n;
    }
    default: {
      const n = (v as Uint8Array).length;
      return varintSize(n) + n;
    }
  }
}

function sizeOf(def: MessageDef, m: Msg, sizes: Map<object, number>): number {
  let total = 0;
  for (const f of def.fields) {
    const v = m[f.name];
    if (v === undefined || v === null) continue;
    const tagSize = varintSize(f.no * 8);
    if (f.kind === 'msg') {
      const list = f.repeated ? (v as Msg[]) : [v as Msg];
      for (const sub of list) {
        const n = sizeOf(f.msg!, sub, sizes);
        sizes.set(sub, n);
        total += tagSize + varintSize(n) + n;
      }
    } else if (!f.repeated) {
      total += tagSize + scalarSize(f, v);
    } else {
      const list = v as ArrayLike<unknown>;
      if (list.length === 0) continue;
      const packed = isPacked(f, m) && f.kind !== 'str' && f.kind !== 'bytes';
      let payload = 0;
      if (f.kind === 'f32' || f.kind === 'f64') payload = list.length * (f.kind === 'f32' ? 4 : 8);
      else for (let i = 0; i < list.length; i++) payload += scalarSize(f, list[i]);
      total += packed ? tagSize + varintSize(payload) + payload : tagSize * list.length + payload;
    }
  }
  if (m.$unknown) for (const u of m.$unknown) total += u.length;
  return total;
}

function writeScalar(w: ChunkWriter, f: FieldDef, v: unknown): void {
  switch (f.kind) {
    case 'i32':
      return (v as number) < 0 ? w.int64(v as number) : w.uint(v as number);
    case 'i64':
    case 'u64':
      return w.int64(v as Int64);
    case 'f32':
      return w.float(v as number);
    case 'f64':
      return w.double(v as number);
    case 'str': {
      const n = stringSize(v as string);
      w.uint(n);
      return w.string(v as string, n);
    }
    default:
      w.uint((v as Uint8Array).length);
      return w.bytes(v as Uint8Array);
  }
}

function writeMessage(w: ChunkWriter, def: MessageDef, m: Msg, sizes: Map<object, number>): void {
  for (const f of def.fields) {
    const v = m[f.name];
    if (v === undefined || v === null) continue;
    if (f.kind === 'msg') {
      const list = f.repeated ? (v as Msg[]) : [v as Msg];
      for (const sub of list) {
        w.tag(f.no, WireType.LEN);
        w.uint(sizes.get(sub)!);
        writeMessage(w, f.msg!, sub, sizes);
      }
      continue;
    }
    const want = expectedWireType(f);
    if (!f.repeated) {
      w.tag(f.no, want);
      writeScalar(w, f, v);
      continue;
    }
    const list = v as ArrayLike<unknown>;
    if (list.length === 0) continue;
    if (isPacked(f, m) && want !== WireType.LEN) {
      w.tag(f.no, WireType.LEN);
      if (f.kind === 'f32' || f.kind === 'f64') {
        const width = f.kind === 'f32' ? 4 : 8;
        w.uint(list.length * width);
        const arr = ArrayBuffer.isView(list) ? (list as Float32Array | Float64Array) : f.kind === 'f32' ? Float32Array.from(list as number[]) : Float64Array.from(list as number[]);
        w.bytes(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
      } else {
        let payload = 0;
        for (let i = 0; i < list.length; i++) payload += scalarSize(f, list[i]);
        w.uint(payload);
        for (let i = 0; i < list.length; i++) writeScalar(w, f, list[i]);
      }
    } else {
      for (let i = 0; i < list.length; i++) {
        w.tag(f.no, want);
        writeScalar(w, f, list[i]);
      }
    }
  }
  if (m.$unknown) for (const u of m.$unknown) w.bytes(u);
}

/**
 * Decodes the bytes of a file the user says is an ONNX model, or says plainly that it is not one:
 * empty, another format recognized by its first bytes (a zip, HDF5, an ORT-format or TFLite model, a
 * Git LFS pointer, text), or protobuf without a graph. A real model that is damaged keeps the codec's
 * own error with its byte offset.
 */
export function decodeModelFile(bytes: Uint8Array, file: string): ModelProto {
  if (bytes.byteLength === 0) throw new CompressError('model', 'not an ONNX model: the file is empty', { file });
  const other = otherFormat(bytes);
  if (other) throw new CompressError('model', `not an ONNX model: ${other}`, { file, offset: 0 });
  let model: ModelProto;
  try {
    model = decodeModel(bytes, file);
  } catch (e) {
    // A first byte that no ModelProto field starts with: not a damaged model but something else.
    if (!MODEL_FIRST_TAGS.has(bytes[0])) throw new CompressError('model', `not an ONNX model: it does not start like one (first byte 0x${bytes[0].toString(16).padStart(2, '0')})`, { file, offset: 0 }, { cause: e });
    throw e;
  }
  if (!model.graph) throw new CompressError('model', 'not an ONNX model: it decodes as protobuf but has no graph', { file });
  return model;
}

/** First bytes of a ModelProto field: tags of fields 1–8 and 14 (ir_version, producer, …, graph, opset_import, metadata_props), and of 20/25/26 (two-byte tags). */
const MODEL_FIRST_TAGS = new Set([0x08, 0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72, 0xa2, 0xca, 0xd2]);

/** What a file that is not ONNX looks like it is, from its first bytes; undefined when unrecognized. */
export function otherFormat(b: Uint8Array): string | undefined {
  const ascii = (from: number, to: number) => String.fromCharCode(...b.subarray(from, Math.min(to, b.length)));
  if (ascii(0, 4) === 'PK\x03\x04') return 'it is a zip archive (a PyTorch checkpoint, an .npz, or a model inside an archive?)';
  if (ascii(0, 4) === '\x89HDF') return 'it is an HDF5 file (a Keras model?)';
  if (ascii(4, 8) === 'ORTM') return 'it is an ORT-format model (.ort): give the .onnx it was converted from';
  if (ascii(4, 8) === 'TFL3') return 'it is a TensorFlow Lite model';
  if (ascii(0, 4) === 'GGUF') return 'it is a GGUF file (llama.cpp)';
  if (ascii(0, 23) === 'version https://git-lfs') return 'it is a Git LFS pointer, not the model (run git lfs pull)';
  const first = b[0];
  if (first === 0x7b || first === 0x5b) return 'it is JSON text';
  if (first === 0x3c) return 'it is HTML or XML text (a download that returned an error page?)';
  return undefined;
}
