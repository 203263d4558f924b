/**
 * Conformance over every model of Debian's libonnx-testdata (the ONNX backend test suite):
 *
 * 1. decode → encode reproduces each model byte for byte, or at least field for field.
 * 2. Every model onnxruntime-node can load and run with its test_data_set inputs gives bit-identical
 *    outputs from the original and the re-encoded bytes (identical bytes ⇒ one run suffices), and — for
 *    information — how many of them match the suite's reference outputs (ORT vs the reference).
 *
 * The data set is a system package (`apt-get install libonnx-testdata`); CI installs it. Without it the
 * suite FAILS instead of skipping, so a missing package can never pass as a green run.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeModel, decodeTensor, encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType, dataTypeName, isDataType } from '../src/onnx/dtypes.js';
import { float16ToFloat32Array } from '../src/onnx/float16.js';
import { tensorValues } from '../src/onnx/tensor.js';
import type { ModelProto, TensorProto, TypeProto } from '../src/onnx/types.js';

const DATA_ROOT = process.env.LIBONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data';
const RTOL = 1e-3;
const ATOL = 1e-5;
const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 };

/** Tensor element types onnxruntime's JS API can carry (others — bfloat16, float8, complex — it cannot). */
const ORT_JS_TYPES = new Set(['float32', 'uint8', 'int8', 'uint16', 'int16', 'int32', 'int64', 'string', 'bool', 'float16', 'float64', 'uint32', 'uint64']);

// ------------------------------------------------------------------------------------ discovery

function findModels(root: string): string[] {
  if (!existsSync(root)) {
    throw new Error(
      `libonnx-testdata not found at ${root}. The conformance suite needs it: run \`sudo apt-get install libonnx-testdata\` ` +
        '(CI installs it) or point LIBONNX_TESTDATA at its data folder. This is a failure, not a skip.',
    );
  }
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'model.onnx') out.push(p);
    }
  };
  walk(root);
  return out.sort();
}

// ------------------------------------------------------------------------------ deep comparison

/**
 * Structural equality of two decoded messages: bytes and typed arrays by content, numbers by bit
 * pattern (so NaN payloads and -0 count), int64 by value whether number or bigint. `$packed` is an
 * encoding detail and ignored. Returns the path of the first difference, or undefined.
 */
function firstDifference(a: unknown, b: unknown, path = 'model'): string | undefined {
  if (a === b) return undefined;
  if ((typeof a === 'number' || typeof a === 'bigint') && (typeof b === 'number' || typeof b === 'bigint')) {
    if (typeof a === 'number' && typeof b === 'number') return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)) ? undefined : path;
    return BigInt(a) === BigInt(b) ? undefined : path;
  }
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    if (a.constructor !== b.constructor) return `${path} (array type)`;
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    return Buffer.compare(x, y) === 0 ? undefined : path;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}.length`;
    for (let i = 0; i < a.length; i++) {
      const d = firstDifference(a[i], b[i], `${path}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    keys.delete('$packed');
    for (const k of keys) {
      const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}.${k}`);
      if (d) return d;
    }
    return undefined;
  }
  return path;
}

// ------------------------------------------------------------------------------ ORT helpers

class NotRunnable extends Error {}

function typeKind(t: TypeProto | undefined): string {
  if (!t) return 'untyped';
  if (t.tensorType) return 'tensor';
  if (t.sequenceType) return 'sequence';
  if (t.optionalType) return 'optional';
  if (t.mapType) return 'map';
  if (t.sparseTensorType) return 'sparse';
  return 'unknown';
}

function ortTypeOf(t: TensorProto): string {
  const dt = t.dataType ?? 0;
  const name = isDataType(dt) ? dataTypeName(dt) : `type ${dt}`;
  if (!ORT_JS_TYPES.has(name)) throw new NotRunnable(`input element type ${name}`);
  return name;
}

const utf8 = new TextDecoder();

function toOrtTensor(t: TensorProto): ort.Tensor {
  const type = ortTypeOf(t);
  const dims = t.dims.map(Number);
  if (t.dataType === DataType.STRING) return new ort.Tensor('string', t.stringData.map((b) => utf8.decode(b)), dims);
  return new ort.Tensor(type as 'float32', tensorValues(t) as Float32Array, dims);
}

interface DataSet {
  feeds: Record<string, ort.Tensor>;
  /** Reference outputs by output name (tensor outputs only). */
  expected: Map<string, TensorProto>;
}

function loadDataSets(model: ModelProto, dir: string): DataSet[] {
  const sets = readdirSync(dir)
    .filter((n) => /^test_data_set_\d+$/.test(n))
    .sort();
  return sets.map((s) => {
    const files = readdirSync(join(dir, s));
    const count = (prefix: string) => files.filter((f) => new RegExp(`^${prefix}_\\d+\\.pb$`).test(f)).length;
    const feeds: Record<string, ort.Tensor> = {};
    const expected = new Map<string, TensorProto>();
    for (let k = 0; k < count('input'); k++) {
      const vi = model.graph!.input[k];
      const kind = typeKind(vi?.type);
      if (kind !== 'tensor') throw new NotRunnable(`${kind} input`);
      feeds[vi.name!] = toOrtTensor(decodeTensor(readFileSync(join(dir, s, `input_${k}.pb`))));
    }
    for (let k = 0; k < count('output'); k++) {
      const vi = model.graph!.output[k];
      if (typeKind(vi?.type) === 'tensor') expected.set(vi.name!, decodeTensor(readFileSync(join(dir, s, `output_${k}.pb`))));
    }
    return { feeds, expected };
  });
}

type Outputs = ort.InferenceSession.OnnxValueMapType[];

async function runAll(bytes: Uint8Array, sets: DataSet[]): Promise<Outputs> {
  const session = await ort.InferenceSession.create(bytes, SESSION);
  try {
    const out: Outputs = [];
    for (const s of sets) out.push(await session.run(s.feeds));
    return out;
  } finally {
    await session.release();
  }
}

function tensorBytesOf(t: ort.Tensor): Uint8Array | string[] {
  const d = t.data as ArrayBufferView | string[];
  if (Array.isArray(d)) return d;
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
}

/** Bit-identical outputs (same names, types, dims and bytes); returns a description of the first difference. */
function outputsDiffer(a: Outputs, b: Outputs): string | undefined {
  for (let i = 0; i < a.length; i++) {
    const names = Object.keys(a[i]).sort();
    if (names.join() !== Object.keys(b[i]).sort().join()) return `set ${i}: output names`;
    for (const n of names) {
      const x = a[i][n] as ort.Tensor;
      const y = b[i][n] as ort.Tensor;
      if (x.type !== y.type || x.dims.join() !== y.dims.join()) return `set ${i} ${n}: type/dims`;
      const bx = tensorBytesOf(x);
      const by = tensorBytesOf(y);
      const same = Array.isArray(bx) ? JSON.stringify(bx) === JSON.stringify(by) : Buffer.compare(bx, by as Uint8Array) === 0;
      if (!same) return `set ${i} ${n}: values`;
    }
  }
  return undefined;
}

/** ORT's output vs the suite's reference, within RTOL/ATOL for floats, exact otherwise. */
function matchesReference(actual: ort.Tensor, ref: TensorProto): boolean {
  if (actual.dims.join() !== ref.dims.map(Number).join()) return false;
  if (ref.dataType === DataType.STRING) {
    const want = ref.stringData.map((b) => utf8.decode(b));
    return JSON.stringify(actual.data) === JSON.stringify(want);
  }
  let want: ArrayLike<number | bigint>;
  try {
    want = tensorValues(ref);
  } catch {
    return false;
  }
  let got = actual.data as ArrayLike<number | bigint>;
  const float = ref.dataType === DataType.FLOAT || ref.dataType === DataType.DOUBLE || ref.dataType === DataType.FLOAT16;
  if (ref.dataType === DataType.FLOAT16) {
    want = float16ToFloat32Array(want as Uint16Array);
    got = float16ToFloat32Array(got as Uint16Array);
  }
  if (got.length !== want.length) return false;
  for (let i = 0; i < got.length; i++) {
    const g = got[i];
    const w = want[i];
    if (float) {
      const gn = g as number;
      const wn = w as number;
      if (Number.isNaN(gn) || Number.isNaN(wn)) {
        if (Number.isNaN(gn) !== Number.isNaN(wn)) return false;
      } else if (gn !== wn && !(Math.abs(gn - wn) <= ATOL + RTOL * Math.abs(wn))) return false;
    } else if (BigInt(g) !== BigInt(w)) return false;
  }
  return true;
}

function loadFailureCategory(message: string): string {
  if (/is not a registered function\/op/.test(message)) return 'op not registered (training/preview domains)';
  if (/Could not find an implementation/.test(message)) return 'no CPU kernel for this op version/type';
  if (/Unsupported data type/.test(message)) return 'unsupported tensor data type';
  if (/layout_ == 0/.test(message)) return 'RNN batchwise layout not supported';
  if (/locale/.test(message)) return 'StringNormalizer locale missing';
  if (/Exception during initialization/.test(message)) return 'kernel initialization exception';
  return 'other';
}

function runFailureCategory(message: string): string {
  if (/Non tensor type/.test(message)) return 'non-tensor (sequence/optional) output';
  return 'other';
}

// --------------------------------------------------------------------------------- the suite

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

const r = {
  models: [] as string[],
  byteIdentical: 0,
  fieldEqual: [] as string[],
  roundTripFailures: [] as string[],
  loadable: 0,
  ran: 0,
  ranModels: [] as string[],
  ranOnce: 0,
  ranBoth: 0,
  outputMismatches: [] as string[],
  reencodedLoadFailures: [] as string[],
  matchReference: 0,
  referenceMismatches: [] as string[],
  notRunnable: new Map<string, number>(),
  loadFailures: new Map<string, number>(),
  runFailures: new Map<string, number>(),
  otherFailures: [] as string[],
  roundTripMs: 0,
  ortMs: 0,
};

describe('libonnx-testdata conformance', () => {
  beforeAll(async () => {
    r.models = findModels(DATA_ROOT);
  });

  it('finds the whole suite', () => {
    // Debian's libonnx-testdata 0.0~git20220623 holds 1,072 models; newer releases may add some.
    expect(r.models.length).toBeGreaterThanOrEqual(1000);
  });

  it('decode → encode is byte-identical, or field-identical, for every model', () => {
    const t0 = performance.now();
    for (const file of r.models) {
      const name = relative(DATA_ROOT, file);
      const bytes = readFileSync(file);
      try {
        const model = decodeModel(bytes, file);
        const again = encodeModelToBytes(model);
        if (Buffer.compare(again, bytes) === 0) {
          r.byteIdentical++;
          continue;
        }
        const diff = firstDifference(decodeModel(bytes, file), decodeModel(again, 're-encoded'));
        if (diff) r.roundTripFailures.push(`${name}: differs at ${diff}`);
        else r.fieldEqual.push(name);
      } catch (e) {
        r.roundTripFailures.push(`${name}: ${(e as Error).message}`);
      }
    }
    r.roundTripMs = performance.now() - t0;
    expect(r.roundTripFailures).toEqual([]);
    expect(r.byteIdentical + r.fieldEqual.length).toBe(r.models.length);
  });

  it('onnxruntime gives bit-identical outputs for the original and re-encoded bytes of every runnable model', async () => {
    const t0 = performance.now();
    for (const file of r.models) {
      const name = relative(DATA_ROOT, file);
      const bytes = readFileSync(file);
      const model = decodeModel(bytes, file);
      const reencoded = encodeModelToBytes(model);
      const same = Buffer.compare(reencoded, bytes) === 0;

      let session: ort.InferenceSession;
      try {
        session = await ort.InferenceSession.create(bytes, SESSION);
      } catch (e) {
        bump(r.loadFailures, loadFailureCategory((e as Error).message));
        continue;
      }
      r.loadable++;
      let sets: DataSet[];
      let original: Outputs;
      try {
        sets = loadDataSets(model, join(file, '..'));
        original = [];
        for (const s of sets) original.push(await session.run(s.feeds));
      } catch (e) {
        if (e instanceof NotRunnable) bump(r.notRunnable, e.message);
        else bump(r.runFailures, runFailureCategory((e as Error).message));
        continue;
      } finally {
        await session.release();
      }
      r.ran++;
      r.ranModels.push(file);

      if (same) r.ranOnce++;
      else {
        r.ranBoth++;
        try {
          const diff = outputsDiffer(original, await runAll(reencoded, sets));
          if (diff) r.outputMismatches.push(`${name}: ${diff}`);
        } catch (e) {
          r.reencodedLoadFailures.push(`${name}: ${(e as Error).message}`);
        }
      }

      let matches = true;
      sets.forEach((s, i) => {
        for (const [out, ref] of s.expected) {
          const actual = original[i][out] as ort.Tensor | undefined;
          if (!actual || !matchesReference(actual, ref)) matches = false;
        }
      });
      if (matches) r.matchReference++;
      else r.referenceMismatches.push(name);
    }
    r.ortMs = performance.now() - t0;

    expect(r.reencodedLoadFailures).toEqual([]);
    expect(r.outputMismatches).toEqual([]);
    // Every model is accounted for exactly once: no silent skips.
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    expect(r.loadable + sum(r.loadFailures)).toBe(r.models.length);
    expect(r.ran + sum(r.notRunnable) + sum(r.runFailures)).toBe(r.loadable);
    // Harness sanity floors (onnxruntime-node 1.30 runs 980 of 1,072 and matches the reference on
    // most of them): a broken feed mapping or decoder would fall far below these.
    expect(r.ran).toBeGreaterThan(0.8 * r.models.length);
    expect(r.matchReference).toBeGreaterThan(0.8 * r.ran);
  });

  it('the comparison paths work where bytes do differ (harness self-check)', async () => {
    // Every model above round-trips byte for byte, so the "bytes differ" paths never run there.
    // Exercise them on a spread of runnable models with a changed doc string.
    expect(r.ranModels.length).toBeGreaterThan(0);
    const picked = r.ranModels.filter((_, i) => i % Math.ceil(r.ranModels.length / 20) === 0);
    for (const file of picked) {
      const bytes = readFileSync(file);
      const model = decodeModel(bytes, file);
      const sets = loadDataSets(model, join(file, '..'));
      model.docString = 'changed by the conformance self-check';
      const changed = encodeModelToBytes(model);
      expect(Buffer.compare(changed, bytes)).not.toBe(0);
      expect(firstDifference(decodeModel(bytes), decodeModel(changed)), file).toBe('model.docString');
      const original = await runAll(bytes, sets);
      expect(outputsDiffer(original, await runAll(changed, sets)), file).toBeUndefined();
    }
    // And the comparisons do see differences.
    const t = (v: number) => ({ y: new ort.Tensor('float32', Float32Array.of(1, v), [2]) });
    expect(outputsDiffer([t(2)], [t(2)])).toBeUndefined();
    expect(outputsDiffer([t(2)], [t(2.0000002)])).toBe('set 0 y: values');
    expect(firstDifference({ a: [1n, 2], b: new Uint8Array([1]) }, { a: [1, 2n], b: new Uint8Array([1]) })).toBeUndefined();
    expect(firstDifference({ a: new Float32Array([1]) }, { a: new Float32Array([NaN]) })).toBe('model.a');
  });

  afterAll(() => {
    if (r.models.length === 0) return;
    const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    const rows: [string, number | string][] = [
      ['models (model.onnx found)', r.models.length],
      ['round trip byte-identical', r.byteIdentical],
      ['round trip field-equal (bytes differ)', r.fieldEqual.length],
      ['round trip failures', r.roundTripFailures.length],
      ['ORT-loadable', r.loadable],
      ['ORT load failures', sum(r.loadFailures)],
      ...[...r.loadFailures].sort((a, b) => b[1] - a[1]).map(([k, v]) => [`  load: ${k}`, v] as [string, number]),
      ['not runnable from Node (non-tensor inputs etc.)', sum(r.notRunnable)],
      ...[...r.notRunnable].sort((a, b) => b[1] - a[1]).map(([k, v]) => [`  not runnable: ${k}`, v] as [string, number]),
      ['ORT run failures', sum(r.runFailures)],
      ...[...r.runFailures].sort((a, b) => b[1] - a[1]).map(([k, v]) => [`  run: ${k}`, v] as [string, number]),
      ['ORT-ran (all test data sets)', r.ran],
      ['outputs identical original vs re-encoded', r.ran - r.outputMismatches.length - r.reencodedLoadFailures.length],
      ['  of which bytes identical (ran once)', r.ranOnce],
      ['  of which bytes differ (ran both, compared)', r.ranBoth],
      [`match reference outputs (rtol ${RTOL}, atol ${ATOL})`, `${r.matchReference} / ${r.ran}`],
      ['round trip time (ms)', Math.round(r.roundTripMs)],
      ['ORT pass time (ms)', Math.round(r.ortMs)],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${String(v).padStart(11)}`);
    if (r.referenceMismatches.length) lines.push(`reference mismatches: ${r.referenceMismatches.join(', ')}`);
    console.log(`\nlibonnx-testdata conformance (${DATA_ROOT})\n${lines.join('\n')}`);
  });
});
