/**
 * The ONNX protobuf codec: lossless round trips of real models (checked by onnxruntime's outputs),
 * int64 exactness, packed/unpacked and unknown fields, zero-copy views, external data, malformed
 * input (always a CompressError('model') with a byte offset, never a crash, hang or huge allocation)
 * and atomic writes.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { CompressError } from '../src/errors.js';
import {
  decodeMessage,
  decodeModel,
  decodeTensor,
  encodeMessage,
  encodeModel,
  encodeModelToBytes,
  joinChunks,
} from '../src/onnx/codec.js';
import { dataTypeName } from '../src/onnx/dtypes.js';
import { EXTERNAL_ALIGNMENT } from '../src/onnx/external.js';
import { readModel, writeChunksAtomic, writeModel } from '../src/onnx/io.js';
import { messages } from '../src/onnx/schema.js';
import { WireReader } from '../src/onnx/wire.js';
import type { ModelProto, TensorProto } from '../src/onnx/types.js';
import { forEachTensor } from '../src/onnx/walk.js';

const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 };
const SILERO_LEGACY = 'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx';
const SILERO_V5 = 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx';
const SPAM = 'test/fixtures/spam-tinybert/model.onnx';
const FMNIST = 'test/fixtures/fmnist-cnn/model.onnx';
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

const tmpRoot = mkdtempSync(join(tmpdir(), 'onnx-codec-test-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));
let tmpCount = 0;
function tmpDir(): string {
  const d = join(tmpRoot, String(tmpCount++));
  mkdirSync(d);
  return d;
}

// ------------------------------------------------------------------ a tiny protobuf writer

type Bytes = Uint8Array | number[];
const utf8 = new TextEncoder();

function varint(v: number | bigint): number[] {
  let u = BigInt.asUintN(64, BigInt(v));
  const out: number[] = [];
  while (u >= 0x80n) {
    out.push(Number(u & 0x7fn) | 0x80);
    u >>= 7n;
  }
  out.push(Number(u));
  return out;
}
const cat = (...parts: Bytes[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));
const tag = (no: number, wt: number) => varint(no * 8 + wt);
/** A varint field (wire type 0). */
const fv = (no: number, v: number | bigint) => cat(tag(no, 0), varint(v));
/** A length-delimited field (wire type 2): bytes, a string, or concatenated sub-fields. */
const fl = (no: number, ...payload: (Bytes | string)[]) => {
  const body = cat(...payload.map((p) => (typeof p === 'string' ? utf8.encode(p) : p)));
  return cat(tag(no, 2), varint(body.length), body);
};
const f32 = (v: number) => [...new Uint8Array(Float32Array.of(v).buffer)];
/** A fixed32 float field (wire type 5). */
const ff = (no: number, v: number) => cat(tag(no, 5), f32(v));
/** A packed run of varints. */
const packedVarints = (no: number, vs: (number | bigint)[]) => fl(no, cat(...vs.map(varint)));

/** ValueInfoProto { name, type { tensor_type { elem_type, shape { dim* } } } } (the message body). */
function valueInfo(name: string, elemType: number, dims: (number | string)[]): Uint8Array {
  const dimMsgs = dims.map((d) => fl(1, typeof d === 'number' ? fv(1, d) : fl(2, d)));
  return cat(fl(1, name), fl(2, fl(1, fv(1, elemType), fl(2, ...dimMsgs))));
}

/** AttributeProto INTS, unpacked (as the ONNX reference writer emits them) or packed (protobufjs). */
function intsAttr(name: string, ints: (number | bigint)[], packed = false): Uint8Array {
  return cat(fl(1, name), packed ? packedVarints(8, ints) : cat(...ints.map((i) => fv(8, i))), fv(20, 7));
}

/** x float [2,4] → Slice(opset 9, attributes starts/ends/axes) → y float [2,3], y = x[:, 1:]. */
function sliceV9Model(extraNode: Bytes = [], extraModel: Bytes = []): Uint8Array {
  const node = cat(
    fl(1, 'x'),
    fl(2, 'y'),
    fl(3, 'slice'),
    fl(4, 'Slice'),
    fl(5, intsAttr('axes', [1])),
    fl(5, intsAttr('ends', [INT64_MAX])),
    fl(5, intsAttr('starts', [-3])), // negative int64: a 10-byte varint
    extraNode,
  );
  const graph = cat(fl(1, node), fl(2, 'g'), fl(11, valueInfo('x', 1, [2, 4])), fl(12, valueInfo('y', 1, [2, 3])));
  return cat(fv(1, 4), fl(2, 'codec-test'), fl(7, graph), fl(8, fl(1, ''), fv(2, 9)), extraModel);
}

/** x float [2,4] → Slice(opset 13, starts/ends/axes as int64 initializers in three encodings) → y. */
function sliceV13Model(): Uint8Array {
  const int64 = 7;
  const starts = cat(fv(1, 1), fv(2, int64), packedVarints(7, [-3]), fl(8, 'starts')); // packed int64_data
  const ends = cat(fv(1, 1), fv(2, int64), fl(8, 'ends'), fl(9, new Uint8Array(BigInt64Array.of(INT64_MAX).buffer))); // raw_data
  const axes = cat(fv(1, 1), fv(2, int64), fv(7, -1), fl(8, 'axes')); // unpacked int64_data, negative axis
  const node = cat(fl(1, 'x'), fl(1, 'starts'), fl(1, 'ends'), fl(1, 'axes'), fl(2, 'y'), fl(4, 'Slice'));
  const graph = cat(
    fl(1, node),
    fl(2, 'g'),
    fl(5, starts),
    fl(5, ends),
    fl(5, axes),
    fl(11, valueInfo('x', 1, [2, 4])),
    fl(12, valueInfo('y', 1, [2, 3])),
  );
  return cat(fv(1, 8), fl(7, graph), fl(8, fl(1, ''), fv(2, 13)));
}

// --------------------------------------------------------------------------- ORT helpers

type Outputs = ort.InferenceSession.OnnxValueMapType;

/** One session at a time, from bytes or from a path (the overloads need the branch). */
async function run(model: Uint8Array | string, feeds: Record<string, ort.Tensor>): Promise<Outputs> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model, SESSION) : await ort.InferenceSession.create(model, SESSION);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

function expectBitIdentical(a: Outputs, b: Outputs): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) {
    const x = a[k] as ort.Tensor;
    const y = b[k] as ort.Tensor;
    expect(y.type).toBe(x.type);
    expect(y.dims).toEqual(x.dims);
    const bx = x.data as ArrayBufferView;
    const by = y.data as ArrayBufferView;
    expect(Buffer.compare(new Uint8Array(bx.buffer, bx.byteOffset, bx.byteLength), new Uint8Array(by.buffer, by.byteOffset, by.byteLength))).toBe(0);
  }
}

/** Deterministic pseudo-random numbers (mulberry32). */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function floats(n: number, seed: number): Float32Array {
  const rnd = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rnd() * 2 - 1);
}

const sileroLegacyFeeds = () => ({
  input: new ort.Tensor('float32', Float32Array.from({ length: 512 }, (_, i) => 0.5 * Math.sin(i / 8)), [1, 512]),
  sr: new ort.Tensor('int64', BigInt64Array.of(16000n), []),
  h: new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]),
  c: new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]),
});
const sileroV5Feeds = () => ({
  input: new ort.Tensor('float32', Float32Array.from({ length: 512 }, (_, i) => 0.5 * Math.sin(i / 8)), [1, 512]),
  state: new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]),
  sr: new ort.Tensor('int64', BigInt64Array.of(16000n), []),
});
const spamFeeds = () => {
  const ids = new BigInt64Array(128);
  const text = utf8.encode('Congratulations! You have won a free cruise. Click here to claim your prize now.');
  ids[0] = 1n;
  text.forEach((b, i) => (ids[i + 1] = BigInt(b + 2)));
  return { input_ids: new ort.Tensor('int64', ids, [1, 128]) };
};
const fmnistFeeds = () => ({ image: new ort.Tensor('float32', floats(784, 7).map(Math.abs), [1, 1, 28, 28]) });

/** The feeds fit the graph inputs as the codec reads them: names, element types, ranks, fixed dims. */
function expectFeedsMatchInputs(model: ModelProto, feeds: Record<string, ort.Tensor>): void {
  const g = model.graph!;
  const initializers = new Set(g.initializer.map((t) => t.name));
  const inputs = g.input.filter((i) => !initializers.has(i.name));
  expect(Object.keys(feeds).sort()).toEqual(inputs.map((i) => i.name).sort());
  for (const i of inputs) {
    const tt = i.type!.tensorType!;
    const feed = feeds[i.name!];
    expect(feed.type).toBe(dataTypeName(tt.elemType!));
    const dims = tt.shape?.dim ?? [];
    expect(feed.dims.length).toBe(dims.length);
    dims.forEach((d, k) => {
      if (d.dimValue !== undefined) expect(feed.dims[k]).toBe(Number(d.dimValue));
    });
  }
}

// ------------------------------------------------------------------------ error helpers

/** Runs `fn`, which must throw a CompressError('model') whose offset lies within the input. */
function expectModelError(fn: () => unknown, inputLength: number, message?: RegExp): CompressError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a CompressError').toBeInstanceOf(CompressError);
  const e = caught as CompressError;
  expect(e.kind).toBe('model');
  expect(typeof e.location.offset).toBe('number');
  expect(e.location.offset).toBeGreaterThanOrEqual(0);
  expect(e.location.offset).toBeLessThanOrEqual(inputLength);
  if (message) expect(e.message).toMatch(message);
  return e;
}

function expectThrowsKind(fn: () => unknown, kind: CompressError['kind'], message?: RegExp): CompressError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, 'expected a CompressError').toBeInstanceOf(CompressError);
  const e = caught as CompressError;
  expect(e.kind).toBe(kind);
  if (message) expect(e.message).toMatch(message);
  return e;
}

// =============================================================================== tests

describe('real models', () => {
  const cases: [string, () => Record<string, ort.Tensor>][] = [
    [SILERO_LEGACY, sileroLegacyFeeds],
    [SILERO_V5, sileroV5Feeds],
    [SPAM, spamFeeds],
    [FMNIST, fmnistFeeds],
  ];
  for (const [file, feeds] of cases) {
    it(`${file.split('/').slice(-2).join('/')}: byte-identical round trip and bit-identical ORT outputs`, async () => {
      const bytes = readFileSync(file);
      const model = decodeModel(bytes, file);
      expectFeedsMatchInputs(model, feeds());
      const again = encodeModelToBytes(model);
      expect(again.length).toBe(bytes.length);
      expect(Buffer.compare(again, bytes)).toBe(0);
      const a = await run(bytes, feeds());
      const b = await run(again, feeds());
      expectBitIdentical(a, b);
      // A real change to the bytes (a doc string) must not change any output either.
      model.docString = 'rewritten by the codec test';
      const changed = encodeModelToBytes(model);
      expect(Buffer.compare(changed, bytes)).not.toBe(0);
      expectBitIdentical(a, await run(changed, feeds()));
    });
  }
});

describe('int64 and int32 exactness', () => {
  const x = () => ({ x: new ort.Tensor('float32', Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]), [2, 4]) });
  const want = [1, 2, 3, 5, 6, 7];

  it('opset 9 Slice: an INT64_MAX `ends` attribute and a negative `starts` survive decode and re-encode', async () => {
    const bytes = sliceV9Model();
    const model = decodeModel(bytes);
    const attrs = Object.fromEntries(model.graph!.node[0].attribute.map((a) => [a.name, a.ints]));
    expect(attrs.ends).toEqual([INT64_MAX]);
    expect(typeof attrs.ends[0]).toBe('bigint');
    expect(attrs.starts).toEqual([-3]);
    expect(attrs.axes).toEqual([1]);
    expect(Buffer.compare(encodeModelToBytes(model), bytes)).toBe(0);
    expect([...((await run(bytes, x())).y.data as Float32Array)]).toEqual(want);
    model.docString = 'changed';
    expect([...((await run(encodeModelToBytes(model), x())).y.data as Float32Array)]).toEqual(want);
  });

  it('opset 13 Slice: INT64_MAX in raw_data, negatives in packed and unpacked int64_data', async () => {
    const bytes = sliceV13Model();
    const model = decodeModel(bytes);
    const [starts, ends, axes] = model.graph!.initializer;
    expect(starts.int64Data).toEqual([-3]);
    expect(axes.int64Data).toEqual([-1]);
    expect(new BigInt64Array(ends.rawData!.slice().buffer)[0]).toBe(INT64_MAX);
    expect(Buffer.compare(encodeModelToBytes(model), bytes)).toBe(0);
    expect([...((await run(bytes, x())).y.data as Float32Array)]).toEqual(want);
    model.docString = 'changed';
    expect([...((await run(encodeModelToBytes(model), x())).y.data as Float32Array)]).toEqual(want);
  });

  it('extreme int64 and int32 values, packed and unpacked, round-trip exactly', () => {
    const i64 = [INT64_MIN, -1, 0, 1, 2 ** 53 - 1, 2n ** 53n, INT64_MAX];
    const decodedI64 = [INT64_MIN, -1, 0, 1, 2 ** 53 - 1, 2n ** 53n, INT64_MAX];
    const i32 = [-1, -(2 ** 31), 2 ** 31 - 1, 0];
    const u64 = [0, 2n ** 64n - 1n];
    for (const packed of [true, false]) {
      const bytes = cat(
        fv(2, 7),
        packed ? packedVarints(5, i32) : cat(...i32.map((v) => fv(5, v))),
        packed ? packedVarints(7, i64) : cat(...i64.map((v) => fv(7, v))),
        fl(8, 't'),
        packed ? packedVarints(11, u64) : cat(...u64.map((v) => fv(11, v))),
      );
      const t = decodeTensor(bytes);
      expect(t.int64Data).toEqual(decodedI64);
      expect(t.int64Data.map((v) => typeof v)).toEqual(['bigint', 'number', 'number', 'number', 'number', 'bigint', 'bigint']);
      expect([...t.int32Data!]).toEqual(i32);
      expect(t.uint64Data).toEqual([0, 2n ** 64n - 1n]);
      expect(Buffer.compare(joinChunks(encodeMessage(messages.TensorProto, t as never)), bytes)).toBe(0);
    }
    // A negative int32 in a singular field (data_type) is a 10-byte varint both ways.
    const neg = cat(fv(2, -5), fl(8, 'n'));
    expect(neg.length).toBe(1 + 10 + 3);
    const t = decodeTensor(neg);
    expect(t.dataType).toBe(-5);
    expect(Buffer.compare(joinChunks(encodeMessage(messages.TensorProto, t as never)), neg)).toBe(0);
  });
});

describe('field encodings', () => {
  const roundTrip = (name: keyof typeof messages, bytes: Uint8Array) =>
    joinChunks(encodeMessage(messages[name], decodeMessage(messages[name], bytes)));

  it('keeps repeated numbers packed or unpacked as they were read', () => {
    const ints = [1, -2, 300, INT64_MAX];
    const unpacked = intsAttr('a', ints, false);
    const packed = intsAttr('a', ints, true);
    expect(decodeMessage(messages.AttributeProto, unpacked).ints).toEqual(ints);
    expect(decodeMessage(messages.AttributeProto, packed).ints).toEqual(ints);
    expect(Buffer.compare(roundTrip('AttributeProto', unpacked), unpacked)).toBe(0);
    expect(Buffer.compare(roundTrip('AttributeProto', packed), packed)).toBe(0);

    const fs = [1.5, -0, Number.POSITIVE_INFINITY];
    const floatsUnpacked = cat(fl(1, 'f'), ...fs.map((v) => ff(7, v)), fv(20, 6));
    const floatsPacked = cat(fl(1, 'f'), fl(7, cat(...fs.map(f32))), fv(20, 6));
    expect(decodeMessage(messages.AttributeProto, floatsUnpacked).floats).toEqual(fs);
    expect(decodeMessage(messages.AttributeProto, floatsPacked).floats).toEqual(fs);
    expect(Buffer.compare(roundTrip('AttributeProto', floatsUnpacked), floatsUnpacked)).toBe(0);
    expect(Buffer.compare(roundTrip('AttributeProto', floatsPacked), floatsPacked)).toBe(0);

    // TensorProto: dims unpacked by default; float_data packed by default — both forms of each.
    const values = [0.25, -1, 3.5];
    for (const dimsPacked of [false, true]) {
      for (const dataPacked of [true, false]) {
        const bytes = cat(
          dimsPacked ? packedVarints(1, [3]) : fv(1, 3),
          fv(2, 1),
          dataPacked ? fl(4, cat(...values.map(f32))) : cat(...values.map((v) => ff(4, v))),
          fl(8, 'w'),
        );
        const t = decodeTensor(bytes);
        expect(t.dims).toEqual([3]);
        expect([...t.floatData!]).toEqual(values);
        expect(Buffer.compare(roundTrip('TensorProto', bytes), bytes)).toBe(0);
      }
    }
  });

  it('keeps unknown fields and writes them back', async () => {
    const unknownNode = cat(fv(99, 12345), fl(98, 'future'), ff(97, 1.25), cat(tag(96, 1), new Array(8).fill(7)));
    const unknownModel = cat(fv(99, INT64_MAX), fl(100, 'model-level extension'));
    const bytes = sliceV9Model(unknownNode, unknownModel);
    const model = decodeModel(bytes);
    expect(model.$unknown?.length).toBe(2);
    expect(model.graph!.node[0].$unknown?.length).toBe(4);
    expect(Buffer.compare(Buffer.from(model.graph!.node[0].$unknown![1]), Buffer.from(fl(98, 'future')))).toBe(0);
    expect(Buffer.compare(encodeModelToBytes(model), bytes)).toBe(0);
    // onnxruntime's protobuf parser accepts them too.
    const out = await run(bytes, { x: new ort.Tensor('float32', new Float32Array(8).fill(2), [2, 4]) });
    expect(out.y.dims).toEqual([2, 3]);

    // An unknown field in the middle of a message is written last: the same fields, reordered.
    const middle = cat(fl(1, 'x'), fv(99, 5), fl(2, 'y'), fl(4, 'Relu'));
    const node = decodeMessage(messages.NodeProto, middle);
    const again = joinChunks(encodeMessage(messages.NodeProto, node));
    expect(Buffer.compare(again, cat(fl(1, 'x'), fl(2, 'y'), fl(4, 'Relu'), fv(99, 5)))).toBe(0);
    const back = decodeMessage(messages.NodeProto, again);
    expect({ ...back, $unknown: undefined }).toEqual({ ...node, $unknown: undefined });
    expect(back.$unknown!.map((u) => [...u])).toEqual(node.$unknown!.map((u) => [...u]));
  });

  it('decodes tensor bytes as views into the input (zero copy) and encodes them without copying', () => {
    const bytes = readFileSync(FMNIST);
    const model = decodeModel(bytes);
    const tensors: TensorProto[] = [];
    forEachTensor(model, (t) => tensors.push(t));
    const raw = tensors.filter((t) => t.rawData && t.rawData.length > 0);
    expect(raw.length).toBeGreaterThan(0);
    for (const t of raw) expect(t.rawData!.buffer).toBe(bytes.buffer);
    const big = raw.filter((t) => t.rawData!.length >= 4096);
    expect(big.length).toBeGreaterThan(0);
    const { chunks } = encodeModel(model);
    for (const t of big) expect(chunks.includes(t.rawData!)).toBe(true);
  });
});

describe('external data', () => {
  it('writes <file>.data with 4096-aligned offsets, keeps small tensors inline, reads it back', async () => {
    const dir = tmpDir();
    const inline = readModel(FMNIST);
    const file = join(dir, 'model.onnx');
    const result = writeModel(inline, file, { externalData: true });
    expect(result.externalDataFile).toBe(`${file}.data`);
    expect(statSync(`${file}.data`).size).toBe(result.externalDataBytes);
    expect(statSync(file).size).toBe(result.bytes);

    const refs = readModel(file, { externalData: false });
    let external = 0;
    let small = 0;
    forEachTensor(refs, (t) => {
      if (t.dataLocation === 1) {
        external++;
        const kv = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
        expect(kv.location).toBe('model.onnx.data');
        expect(Number(kv.offset) % EXTERNAL_ALIGNMENT).toBe(0);
        expect(Number(kv.length)).toBeGreaterThanOrEqual(1024);
      } else {
        small++;
        expect(t.rawData?.length ?? 0).toBeLessThan(1024);
      }
    });
    expect(external).toBeGreaterThan(0);
    expect(small).toBeGreaterThan(0);

    // Loaded back: every tensor holds the same bytes as the inline model.
    const loaded = readModel(file);
    const bytesOf = (m: ModelProto) => {
      const out: Buffer[] = [];
      forEachTensor(m, (t) => out.push(Buffer.from(t.rawData ?? [])));
      return out;
    };
    const [got, want0] = [bytesOf(loaded), bytesOf(inline)];
    expect(got.length).toBe(want0.length);
    got.forEach((b, i) => expect(Buffer.compare(b, want0[i])).toBe(0)); // (toEqual on MB-sized buffers is slow)

    const feeds = fmnistFeeds();
    const want = await run(encodeModelToBytes(inline), feeds);
    expectBitIdentical(want, await run(encodeModelToBytes(loaded), feeds));
    // onnxruntime reads the external-data model from its path by itself.
    expectBitIdentical(want, await run(file, feeds));
  });

  it('refuses locations outside the model folder, ranges past the data file and a missing data file', () => {
    const dir = tmpDir();
    const file = join(dir, 'model.onnx');
    writeModel(readModel(FMNIST), file, { externalData: true });
    const refs = readModel(file, { externalData: false });
    const firstExternal = (m: ModelProto) => {
      let found: TensorProto | undefined;
      forEachTensor(m, (t) => (found ??= t.dataLocation === 1 ? t : undefined));
      return found!;
    };
    const withRef = (name: string, edit: (kv: Record<string, string>) => void) => {
      const m = readModel(file, { externalData: false });
      const t = firstExternal(m);
      const kv = Object.fromEntries(t.externalData.map((e) => [e.key!, e.value!]));
      edit(kv);
      t.externalData = Object.entries(kv).map(([key, value]) => ({ key, value }));
      const out = join(dir, name);
      writeModel(m, out);
      return out;
    };
    expect(firstExternal(refs)).toBeDefined();

    for (const location of ['/etc/passwd', '../x', 'sub/../../x', '..\\x']) {
      const f = withRef(`bad-${location.length}-${location.charCodeAt(0)}.onnx`, (kv) => (kv.location = location));
      expectThrowsKind(() => readModel(f), 'model', /outside the model's folder/);
    }
    const past = withRef('past.onnx', (kv) => (kv.offset = String(statSync(`${file}.data`).size - 10)));
    const e1 = expectThrowsKind(() => readModel(past), 'model', /external data file/);
    expect(e1.location.file).toBe(`${file}.data`);

    // No length and an offset past the end; a location that names a folder.
    const pastNoLength = withRef('past2.onnx', (kv) => {
      kv.offset = String(statSync(`${file}.data`).size + 100);
      delete kv.length;
    });
    expectThrowsKind(() => readModel(pastNoLength), 'model', /external data file/);
    mkdirSync(join(dir, 'folder'));
    const folder = withRef('folder.onnx', (kv) => (kv.location = 'folder'));
    expectThrowsKind(() => readModel(folder), 'model', /not a regular file/);

    const missing = withRef('missing.onnx', (kv) => (kv.location = 'nowhere.data'));
    const e2 = expectThrowsKind(() => readModel(missing), 'io');
    expect(e2.message).toContain(join(dir, 'nowhere.data'));
    expect(e2.location.file).toBe(join(dir, 'nowhere.data'));
  });
});

describe('malformed input', () => {
  it('an empty file is an empty model', () => {
    const m = decodeModel(new Uint8Array(0));
    expect(m.graph).toBeUndefined();
    expect(m.opsetImport).toEqual([]);
    expect(encodeModelToBytes(m).length).toBe(0);
  });

  it('a real model truncated anywhere inside its graph is a CompressError with the offset', () => {
    const bytes = readFileSync(SPAM);
    // A cut exactly between two top-level fields leaves a valid (shorter) model; every other cut fails.
    const boundaries = new Set<number>([0]);
    const r = new WireReader(bytes);
    while (r.pos < bytes.length) {
      r.skip(r.uint32() & 7, bytes.length);
      boundaries.add(r.pos);
    }
    const rnd = mulberry32(99);
    const cuts = [1, 2, 3, 7, 20, 100, 1000, 4096, 100_000, bytes.length >> 1, bytes.length - 40, bytes.length - 1];
    for (let i = 0; i < 40; i++) cuts.push(1 + Math.floor(rnd() * (bytes.length - 1)));
    let failed = 0;
    for (const cut of cuts) {
      if (boundaries.has(cut)) {
        expect(() => decodeModel(bytes.subarray(0, cut))).not.toThrow();
        continue;
      }
      const e = expectModelError(() => decodeModel(bytes.subarray(0, cut), 'cut.onnx'), cut);
      expect(e.location.file).toBe('cut.onnx');
      failed++;
    }
    expect(failed).toBeGreaterThan(cuts.length - 5);
  });

  it('random bytes (seeded) are CompressErrors', () => {
    const rnd = mulberry32(1234);
    for (let i = 0; i < 300; i++) {
      const buf = Uint8Array.from({ length: 64 + Math.floor(rnd() * 4000) }, () => Math.floor(rnd() * 256));
      expectModelError(() => decodeModel(buf), buf.length);
    }
  });

  it('wrong wire types for known fields', () => {
    const cases: [Uint8Array, RegExp][] = [
      [fv(7, 1), /graph: expected wire type 2, found 0/], // graph as a varint
      [fl(1, [1]), /irVersion: expected wire type 0, found 2/], // ir_version as bytes
      [ff(2, 1), /producerName: expected wire type 2, found 5/], // a string as fixed32
      [fl(7, fl(1, fv(4, 3))), /opType: expected wire type 2, found 0/], // nested: node.op_type as a varint
      [fl(7, fl(5, ff(2, 1))), /dataType: expected wire type 0, found 5/], // initializer.data_type as fixed32
      [cat(tag(3, 3)), /invalid wire type 3|expected wire type/], // a group start
      [cat(tag(50, 7)), /invalid wire type 7/], // an unknown field with an impossible wire type
    ];
    for (const [bytes, message] of cases) expectModelError(() => decodeModel(bytes), bytes.length, message);
  });

  it('length prefixes past the end, including 2^31 and 2^32-1, allocate nothing', () => {
    const before = process.memoryUsage().arrayBuffers;
    const cases = [
      cat(tag(2, 2), varint(5), [0x61, 0x62]), // a string 3 bytes short
      cat(tag(7, 2), varint(2 ** 31)), // a graph of 2 GiB
      cat(tag(2, 2), varint(2 ** 31), [0x61]),
      cat(tag(2, 2), varint(2 ** 32 - 1), [0x61]),
      cat(tag(2, 2), varint(2 ** 32 + 1), [0x61]), // must not wrap around to a length of 1
      cat(tag(2, 2), varint(2n ** 64n - 1n), [0x61]),
      cat(tag(77, 2), varint(2 ** 31)), // an unknown field being skipped
      fl(7, cat(tag(1, 2), varint(2 ** 31 - 1))), // nested, past the enclosing message
      fl(7, fl(5, cat(tag(4, 2), varint(2 ** 31 - 4)))), // a packed float run
    ];
    for (const bytes of cases) expectModelError(() => decodeModel(bytes), bytes.length, /length \d+ runs past the end/);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 2 ** 20);
  });

  it('varints longer than 10 bytes', () => {
    const eleven = [...new Array(10).fill(0xff), 0x01];
    expectModelError(() => decodeModel(Uint8Array.from(eleven)), 11, /varint longer than 10 bytes/); // as a tag
    expectModelError(() => decodeModel(cat(tag(1, 0), eleven)), 12, /varint longer than 10 bytes/); // as an int64
    expectModelError(() => decodeModel(cat(tag(2, 2), eleven)), 12, /varint longer than 10 bytes/); // as a length
    expectModelError(() => decodeModel(fl(7, fl(5, cat(tag(2, 0), eleven)))), 16, /varint longer than 10 bytes/); // an int32
  });

  it('messages nested 10,000 levels deep fail with "nested deeper", not a stack overflow', () => {
    // ModelProto.graph → GraphProto.input → ValueInfoProto.type → (TypeProto.sequence_type →
    // TypeSequence.elem_type)* : built inside-out so each length is known when its header is written.
    const fields = [7, 11, 2];
    while (fields.length < 10_000) fields.push(4, 1);
    const headers: number[][] = [];
    let len = 0;
    for (let i = fields.length - 1; i >= 0; i--) {
      const h = [...tag(fields[i], 2), ...varint(len)];
      headers.push(h);
      len += h.length;
    }
    const bytes = Uint8Array.from(headers.reverse().flat());
    expect(bytes.length).toBe(len);
    expectModelError(() => decodeModel(bytes), bytes.length, /nested deeper than/);
    // The same chain inside a TypeProto on its own.
    const typeChain = bytes.subarray(headers[0].length + headers[1].length + headers[2].length);
    expectModelError(() => decodeMessage(messages.TypeProto, typeChain), typeChain.length, /nested deeper than/);
  });
});

describe('atomic writes', () => {
  it('a failing writer leaves the old file intact and no temp files behind', () => {
    const dir = tmpDir();
    const file = join(dir, 'model.onnx');
    writeFileSync(file, 'old contents');
    // More than one writev batch (1,024 buffers), the second of which holds a bad chunk.
    const chunks: Uint8Array[] = Array.from({ length: 1500 }, () => new Uint8Array(100).fill(1));
    chunks[1200] = 42 as unknown as Uint8Array;
    expectThrowsKind(() => writeChunksAtomic(file, { chunks, byteLength: 150_000 }), 'io', /cannot write/);
    expect(readFileSync(file, 'utf8')).toBe('old contents');
    expect(readdirSync(dir)).toEqual(['model.onnx']);
  });

  it('a failing encoder leaves the old file intact and no temp files behind', () => {
    const dir = tmpDir();
    const file = join(dir, 'model.onnx');
    writeFileSync(file, 'old contents');
    const model = decodeModel(sliceV9Model());
    (model as unknown as { producerName: unknown }).producerName = 12345; // not a string: the encoder throws
    expect(() => writeModel(model, file)).toThrow();
    expect(readFileSync(file, 'utf8')).toBe('old contents');
    expect(readdirSync(dir)).toEqual(['model.onnx']);
  });

  it('writing into a missing folder is an io error and creates nothing', () => {
    const dir = tmpDir();
    const file = join(dir, 'no', 'such', 'model.onnx');
    const e = expectThrowsKind(() => writeModel(decodeModel(sliceV9Model()), file), 'io', /cannot write: ENOENT/);
    expect(e.location.file).toBe(file);
    expect(existsSync(join(dir, 'no'))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('writing over an existing model replaces it completely', () => {
    const dir = tmpDir();
    const file = join(dir, 'model.onnx');
    writeFileSync(file, new Uint8Array(5_000_000).fill(9)); // a longer old file: no stale tail may remain
    const bytes = sliceV9Model();
    writeModel(decodeModel(bytes), file);
    expect(Buffer.compare(readFileSync(file), bytes)).toBe(0);
    expect(readdirSync(dir)).toEqual(['model.onnx']);
  });
});
