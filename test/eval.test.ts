import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CompressError } from '../src/errors.js';
import { DataType } from '../src/onnx/dtypes.js';
import { readModel } from '../src/onnx/io.js';
import { dimsOf, makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { inputSpecs } from '../src/runtime/session.js';
import { loadSamples, locateJsonError, parseNpy, stackSamples } from '../src/data/index.js';
import { checkBudget } from '../src/eval/budget.js';
import { evaluateModels, type EvalReport } from '../src/eval/evaluate.js';
import { loadFashionMnist, loadSpamTestSet, spamTokenize } from '../bench/lib/fixtures.js';
import { accuracy, compareOutputs, latencyStats } from '../src/eval/metrics.js';
import type { InputSpec } from '../src/data/types.js';
import { zip } from './zip-writer.js';

const F = new URL('./fixtures/', import.meta.url).pathname;
const SPAM_MODEL = `${F}spam-tinybert/model.onnx`;
const SPAM_DATA = `${F}spam-tinybert/test-split.json`;
const FM_MODEL = `${F}fmnist-cnn/model.onnx`;
const FM_IMAGES = `${F}fmnist-cnn/t10k-images-idx3-ubyte.gz`;
const FM_LABELS = `${F}fmnist-cnn/t10k-labels-idx1-ubyte.gz`;

const SPAM_INPUTS: InputSpec[] = [{ name: 'input_ids', type: 'int64', dims: ['batch', 128] }];
const FM_INPUTS: InputSpec[] = [{ name: 'image', type: 'float32', dims: ['batch', 1, 28, 28] }];
/** A model with two inputs sharing symbolic dims. */
const BERT_INPUTS: InputSpec[] = [
  { name: 'input_ids', type: 'int64', dims: ['batch', 'sequence'] },
  { name: 'attention_mask', type: 'int64', dims: ['batch', 'sequence'] },
];
const X_INPUTS: InputSpec[] = [{ name: 'x', type: 'float32', dims: ['batch', 3] }];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'onnx-compress-eval-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, data: string | Uint8Array): string {
  const file = join(dir, name);
  writeFileSync(file, data);
  return file;
}

async function dataError(p: Promise<unknown>): Promise<CompressError> {
  const e = await p.then(
    () => undefined,
    (err) => err,
  );
  expect(e).toBeInstanceOf(CompressError);
  return e as CompressError;
}

/** A .npy file (format 1 or 2) of a C-order array. */
function npy(descr: string, shape: number[], data: ArrayBufferView, version = 1): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const pre = version === 1 ? 10 : 12;
  header += ' '.repeat(63 - ((pre + header.length) % 64)) + '\n';
  const out = new Uint8Array(pre + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const dv = new DataView(out.buffer);
  if (version === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), pre);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), pre + header.length);
  return out;
}

/** numpy-written archives (np.savez / np.savez_compressed, zip64 local headers): x (2, 3) and labels [1, 0]. */
const NPZ_STORED =
  'UEsDBC0AAAAAAAAAIQA0MXjI//////////8FABQAeC5ucHkBABAAsAAAAAAAAACwAAAAAAAAAJNOVU1QWQEAdgB7J2Rlc2NyJzogJzxmOCcsICdmb3J0cmFuX29yZGVyJzogRmFsc2UsICdzaGFwZSc6ICgyLCAzKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAKAAAAAAAAAAAAAAAAAADQPwAAAAAAAOA/AAAAAAAA6D8AAAAAAADwPwAAAAAAAPQ/UEsDBC0AAAAAAAAAIQBx+zmr//////////8KABQAbGFiZWxzLm5weQEAEACQAAAAAAAAAJAAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoBAAAAAAAAAAAAAAAAAAAAUEsBAi0DLQAAAAAAAAAhADQxeMiwAAAAsAAAAAUAAAAAAAAAAAAAAIABAAAAAHgubnB5UEsBAi0DLQAAAAAAAAAhAHH7OauQAAAAkAAAAAoAAAAAAAAAAAAAAIAB5wAAAGxhYmVscy5ucHlQSwUGAAAAAAIAAgBrAAAAswEAAAAA';
const NPZ_DEFLATE =
  'UEsDBC0AAAAIAAAAIQAKnACk//////////8FABQAeC5ucHkBABAAmAAAAAAAAABWAAAAAAAAAJvsF+obEMnIUMZQrZ6SWpxcpG6loG6TZqKuo6Cell9UUpSYF59flJIKEndLzClOBYoXZyQWpAL5GkY6CsaaOgq1CmQDLgYwaLADEvYMDA5A3ADEC+wBUEsDBC0AAAAIAAAAIQBx+zmr//////////8KABQAbGFiZWxzLm5weQEAEACQAAAAAAAAAEgAAAAAAAAAm+wX6hsQychQxlCtnpJanFykbqWgbpNpoa6joJ6WX1RSlJgXn1+UkgoSd0vMKU4FihdnJBakAvkaRjqaOgq1ChQALkYGVAAAUEsBAi0DLQAAAAgAAAAhAAqcAKRWAAAAmAAAAAUAAAAAAAAAAAAAAIABAAAAAHgubnB5UEsBAi0DLQAAAAgAAAAhAHH7OatIAAAAkAAAAAoAAAAAAAAAAAAAAIABjQAAAGxhYmVscy5ucHlQSwUGAAAAAAIAAgBrAAAAEQEAAAAA';
/** np.save(np.asfortranarray(x)) */
const NPY_FORTRAN =
  'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY4JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAAAAAAAAAAAAAOg/AAAAAAAA0D8AAAAAAADwPwAAAAAAAOA/AAAAAAAA9D8=';


// -------------------------------------------------------------------------------------- accuracy

describe('evaluateModels on the fixtures', () => {
  let fmReport: EvalReport;

  it('spam-tinybert: 917/1000 = 0.917 on its 1,000 e-mails, agreement 1 with itself', async () => {
    const samples = loadSpamTestSet(SPAM_DATA);
    const model = readModel(SPAM_MODEL);
    const r = await evaluateModels(model, model, samples, { batch: 16, runs: 3 });
    expect(r.samples).toBe(1000);
    expect(r.labeled).toBe(1000);
    expect(r.output).toBe('logits');
    expect(r.device).toBe('cpu');
    expect(Math.abs(r.original.accuracy! - 0.917)).toBeLessThanOrEqual(0.001);
    expect(r.compressed.accuracy).toBe(r.original.accuracy);
    expect(r.metrics.agreement).toBe(1);
    expect(r.metrics.cosine).toBeCloseTo(1, 6);
    expect(r.nonFinite).toBe(0);
    expect(r.original.latencyMs.median).toBeGreaterThan(0);
  });

  it('fmnist-cnn: 9039/10000 = 0.9039 on t10k, agreement 1 with itself', async () => {
    const samples = loadFashionMnist(FM_IMAGES, FM_LABELS);
    expect(samples[0].feeds.image.dims).toEqual([1, 1, 28, 28]);
    const model = readModel(FM_MODEL);
    fmReport = await evaluateModels(model, model, samples, { runs: 3 });
    expect(fmReport.samples).toBe(10000);
    expect(Math.abs(fmReport.original.accuracy! - 0.9039)).toBeLessThanOrEqual(0.001);
    expect(fmReport.compressed.accuracy).toBe(fmReport.original.accuracy);
    expect(fmReport.metrics).toEqual({ agreement: 1, cosine: 1, relRms: 0, maxAbs: 0, kl: 0, rowSize: 10 });
    expect(fmReport.perOutput.logits.agreement).toBe(1);
    expect(checkBudget(fmReport, { maxAccuracyDrop: 0.01, minAgreement: 0.99, minCosine: 0.999, onFail: 'error' }, 1000)).toEqual({ ok: true, violations: [] });
  });

  it('a broken model (Gemm/MatMul weights zeroed) fails the accuracy budget', async () => {
    const model = readModel(FM_MODEL);
    const broken: ModelProto = { ...model, graph: { ...model.graph!, initializer: [...model.graph!.initializer] } };
    const g = broken.graph!;
    const weights = new Set(g.node.filter((n) => n.opType === 'Gemm' || n.opType === 'MatMul').map((n) => n.input[1]));
    g.initializer = g.initializer.map((t) => (weights.has(t.name!) ? makeTensor(t.name!, DataType.FLOAT, dimsOf(t), new Float32Array(dimsOf(t).reduce((a, b) => a * b, 1))) : t));
    expect(weights.size).toBe(2);
    const samples = loadFashionMnist(FM_IMAGES, FM_LABELS, 1000);
    const r = await evaluateModels(model, broken, samples, { runs: 2 });
    expect(r.compressed.accuracy!).toBeLessThan(0.2);
    const { ok, violations } = checkBudget(r, { maxAccuracyDrop: 0.05, minAgreement: 0.9, minCosine: 0.9, maxBytes: 1000, onFail: 'error' }, 3_300_000);
    expect(ok).toBe(false);
    expect(violations).toHaveLength(4);
    expect(violations[0]).toMatch(/^accuracy drop 0\.\d+ > maxAccuracyDrop 0\.05 \(accuracy 0\.\d{4} → 0\.\d{4}\)$/);
    expect(violations[1]).toMatch(/^agreement 0\.\d+ < minAgreement 0\.9$/);
    expect(violations[2]).toMatch(/^cosine -?[\d.e-]+ < minCosine 0\.9$/);
    expect(violations[3]).toBe('size 3300000 > maxBytes 1000');
  });

  it('checkBudget: accuracy needs labels; NaN never passes; values print with enough digits', () => {
    const base: EvalReport = {
      samples: 10, output: 'y', device: 'cpu', labeled: 0,
      original: { latencyMs: { median: 1, p90: 1 } }, compressed: { latencyMs: { median: 1, p90: 1 } },
      metrics: { agreement: 1, cosine: 0.99995, relRms: 0, maxAbs: 0, kl: 0 }, perOutput: {}, nonFinite: 0, warnings: [], ms: 1,
    };
    expect(checkBudget(base, { maxAccuracyDrop: 0.05, onFail: 'error' }, 1).violations).toEqual([
      'maxAccuracyDrop 0.05 needs labeled evaluation data, but none of the 10 samples had a usable label (give labels and set evaluate.labels)',
    ]);
    expect(checkBudget(base, { minCosine: 0.99999, onFail: 'error' }, 1).violations).toEqual(['cosine 0.99995 < minCosine 0.99999']);
    const nan = { ...base, nonFinite: 3, metrics: { ...base.metrics, cosine: NaN } };
    expect(checkBudget(nan, { minCosine: 0.5, onFail: 'error' }, 1).violations).toEqual(['cosine NaN < minCosine 0.5 (the compressed model produced 3 NaN/Inf values)']);
    const acc = { ...base, original: { ...base.original, accuracy: 0.917 }, compressed: { ...base.compressed, accuracy: 0.9047 } };
    expect(checkBudget(acc, { maxAccuracyDrop: 0.01, onFail: 'warn' }, 1).violations).toEqual(['accuracy drop 0.0123 > maxAccuracyDrop 0.01 (accuracy 0.9170 → 0.9047)']);
  });
});

// -------------------------------------------------------------------------------------- metrics

describe('metrics', () => {
  it('agreement, cosine, relRms, maxAbs, KL, accuracy, latency', () => {
    const ref = new Float32Array([1, 2, 3, 0, 0, 1]);
    const test = new Float32Array([1, 3, 2, 0, 0, 1]);
    const m = compareOutputs(ref, test, [2, 3]);
    expect(m.agreement).toBe(0.5);
    expect(m.cosine).toBeCloseTo(14 / 15, 6);
    expect(m.relRms).toBeCloseTo(Math.sqrt(2) / Math.sqrt(15), 6);
    expect(m.maxAbs).toBe(1);
    // KL of row 0: p = softmax(1,2,3), q = softmax(1,3,2); row 1 identical.
    const p = [1, 2, 3].map((x) => Math.exp(x)).map((e, _, a) => e / a.reduce((s, v) => s + v, 0));
    const q = [1, 3, 2].map((x) => Math.exp(x)).map((e, _, a) => e / a.reduce((s, v) => s + v, 0));
    expect(m.kl).toBeCloseTo(p.reduce((s, pi, i) => s + pi * Math.log(pi / q[i]), 0) / 2, 6);
    expect(accuracy(ref, [2, 3], [2, 0])).toBe(0.5);
    expect(accuracy(ref, [2, 3], [2, -100])).toBe(1);
    expect(compareOutputs(ref, new Float32Array([NaN, 0, 0, 0, 0, 1]), [2, 3]).cosine).toBeNaN();
    expect(latencyStats([5, 1, 3, 2, 4])).toEqual({ median: 3, p90: 4.6 });
  });
});

// -------------------------------------------------------------------------------------- data

describe('loadSamples', () => {
  it('JSONL: loads samples with labels; they evaluate like the fixture loader', async () => {
    const ref = loadSpamTestSet(SPAM_DATA, 40);
    const lines = ref.map((s) => JSON.stringify({ inputs: { input_ids: [Array.from(s.feeds.input_ids.data as BigInt64Array, Number)] }, label: s.label }));
    const file = write('spam.jsonl', lines.join('\n') + '\n\n');
    const model = readModel(SPAM_MODEL);
    const samples = await loadSamples({ data: file }, inputSpecs(model), { labelKey: 'label' });
    expect(samples).toHaveLength(40);
    expect(samples[3].feeds.input_ids.type).toBe('int64');
    expect(samples[3].feeds.input_ids.dims).toEqual([1, 128]);
    expect(samples[3].feeds.input_ids.data).toEqual(ref[3].feeds.input_ids.data);
    expect(samples[3].label).toBe(ref[3].label);
    const [a, b] = await Promise.all([evaluateModels(model, model, samples, { runs: 0 }), evaluateModels(model, model, ref, { runs: 0 })]);
    expect(a.original.accuracy).toBe(b.original.accuracy);
    expect((await loadSamples({ data: file, samples: 5 }, SPAM_INPUTS)).length).toBe(5);
  });

  it('JSONL: {dtype, dims, data} values, float conversion, shared symbolic dims', async () => {
    const file = write(
      'obj.jsonl',
      [
        JSON.stringify({ inputs: { input_ids: { dtype: 'int32', dims: [1, 3], data: [5, 6, 7] }, attention_mask: [[1, 1, 0]] }, label: [0, 1, 2] }),
        JSON.stringify({ inputs: { input_ids: [[1, 2]], attention_mask: [[1, 1]] } }),
      ].join('\r\n'),
    );
    const s = await loadSamples({ data: file }, BERT_INPUTS);
    expect(Array.from(s[0].feeds.input_ids.data as BigInt64Array)).toEqual([5n, 6n, 7n]);
    expect(s[0].label).toEqual([0, 1, 2]);
    expect(s[1].label).toBeUndefined();
    const f16 = await loadSamples({ data: write('f16.jsonl', JSON.stringify({ inputs: { x: [[1.5, -2, 65504]] } })) }, [{ name: 'x', type: 'float16', dims: [1, 3] }]);
    expect(Array.from(f16[0].feeds.x.data as Uint16Array)).toEqual([0x3e00, 0xc000, 0x7bff]);
  });

  it('JSONL errors name the file, line, sample and input', async () => {
    const bad = async (name: string, lines: string[], inputs = BERT_INPUTS) => (await dataError(loadSamples({ data: write(name, lines.join('\n')) }, inputs))).message;
    const ok = JSON.stringify({ inputs: { input_ids: [[1, 2]], attention_mask: [[1, 1]] } });
    const file = (n: string) => join(dir, n);

    expect(await bad('name.jsonl', [ok, '', JSON.stringify({ inputs: { input_idz: [[1, 2]], attention_mask: [[1, 1]] } })])).toBe(
      `${file('name.jsonl')}:3: sample 2: input "input_idz" is not an input of the model (did you mean "input_ids"?); its inputs are "input_ids", "attention_mask"`,
    );
    expect(await bad('shape.jsonl', [JSON.stringify({ inputs: { input_ids: [[1, 2, 3]] } })], SPAM_INPUTS)).toBe(
      `${file('shape.jsonl')}:1: sample 1: input "input_ids" has shape [1, 3] but the model expects [batch, 128] (dim 1 must be 128)`,
    );
    expect(await bad('rank.jsonl', [JSON.stringify({ inputs: { input_ids: [1, 2] } })], SPAM_INPUTS)).toBe(
      `${file('rank.jsonl')}:1: sample 1: input "input_ids" has shape [2] (rank 1) but the model expects [batch, 128] (rank 2) (a sample is the feeds of one model call: add the batch axis, e.g. [[…]] for a batch of 1)`,
    );
    expect(await bad('json.jsonl', [ok, '{"inputs": {"input_ids": [[1, 2]], "attention_mask": [[1, 1]]}}', '{"inputs": {"input_ids": [[1, 2],], "attention_mask": [[1]]}}'])).toBe(
      `${file('json.jsonl')}:3:34: sample 3: invalid JSON: expected a value but found ']'`,
    );
    expect(await bad('missing.jsonl', [JSON.stringify({ inputs: { input_ids: [[1, 2]] } })])).toBe(
      `${file('missing.jsonl')}:1: sample 1: missing input "attention_mask" (the model's inputs: "input_ids", "attention_mask")`,
    );
    expect(await bad('sym.jsonl', [JSON.stringify({ inputs: { input_ids: [[1, 2]], attention_mask: [[1, 1, 1]] } })])).toBe(
      `${file('sym.jsonl')}:1: sample 1: input "attention_mask" has shape [1, 3]: dim 1 ("sequence") is 3 but input "input_ids" has 2 for "sequence"`,
    );
    expect(await bad('ragged.jsonl', [JSON.stringify({ inputs: { input_ids: [[1, 2], [3]], attention_mask: [[1, 1]] } })])).toBe(
      `${file('ragged.jsonl')}:1: sample 1: input "input_ids": ragged array: [1] has 1 elements but [0] has 2`,
    );
    expect(await bad('nan.jsonl', [JSON.stringify({ inputs: { input_ids: [[1, 'a']], attention_mask: [[1, 1]] } })])).toBe(
      `${file('nan.jsonl')}:1: sample 1: input "input_ids": [0][1] is "a", not a number`,
    );
    expect(await bad('int.jsonl', [JSON.stringify({ inputs: { input_ids: [[1, 2.5]], attention_mask: [[1, 1]] } })])).toBe(
      `${file('int.jsonl')}:1: sample 1: input "input_ids": [0][1] is 2.5, not an integer (the input is int64)`,
    );
    expect(await bad('noinputs.jsonl', [JSON.stringify({ input: {} })])).toBe(
      `${file('noinputs.jsonl')}:1: sample 1: no "inputs" object (found "input"): a line is {"inputs": {"input_ids": …, "attention_mask": …}, "label": …}`,
    );
    expect(locateJsonError('{"a": 1 "b": 2}')).toEqual({ index: 8, message: "expected ',' or '}' but found '\"'" });
    expect(locateJsonError('{"a": "x')).toEqual({ index: 6, message: 'unterminated string' });
  });

  it('.npy, .npz (numpy-written, stored and deflated) and folders of .npy files', async () => {
    // numpy's own archives: x float64 (2, 3) → float32 for the model, labels int64.
    for (const b64 of [NPZ_STORED, NPZ_DEFLATE]) {
      const s = await loadSamples({ data: write('np.npz', Buffer.from(b64, 'base64')) }, X_INPUTS);
      expect(s).toHaveLength(2);
      expect(s[1].feeds.x.type).toBe('float32');
      expect(s[1].feeds.x.dims).toEqual([1, 3]);
      expect(Array.from(s[1].feeds.x.data as Float32Array)).toEqual([0.75, 1, 1.25]);
      expect(s.map((x) => x.label)).toEqual([1, 0]);
    }
    // A single .npy, format 2, int32 widened to int64, batch axis added.
    const ids = write('ids.npy', npy('<i4', [3, 128], new Int32Array(3 * 128).map((_, i) => i % 200), 2));
    const s = await loadSamples({ data: ids }, SPAM_INPUTS);
    expect(s[2].feeds.input_ids.dims).toEqual([1, 128]);
    expect((s[2].feeds.input_ids.data as BigInt64Array)[0]).toBe(BigInt((2 * 128) % 200));
    // A folder: <input>.npy per input plus labels.npy.
    const folder = join(dir, 'bert');
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, 'input_ids.npy'), npy('<i8', [2, 1, 4], new BigInt64Array(8).fill(7n)));
    writeFileSync(join(folder, 'attention_mask.npy'), npy('|u1', [2, 1, 4], new Uint8Array(8).fill(1)));
    writeFileSync(join(folder, 'labels.npy'), npy('<i8', [2], new BigInt64Array([0n, 1n])));
    const f = await loadSamples({ data: folder }, BERT_INPUTS);
    expect(f.map((x) => x.feeds.attention_mask.dims)).toEqual([[1, 4], [1, 4]]);
    expect(f[1].feeds.attention_mask.type).toBe('int64');
    expect(f[1].label).toBe(1);
    // An npz with a misspelled array name, and one whose sample shape does not fit.
    const wrong = write('wrong.npz', zip([{ name: 'imgae.npy', data: npy('<f4', [2, 1, 28, 28], new Float32Array(2 * 784)) }]));
    expect((await dataError(loadSamples({ data: wrong }, FM_INPUTS))).message).toBe(
      `${wrong}: array "imgae": array "imgae" is not an input of the model (did you mean "image"?); its inputs are "image" (or "label" for labels)`,
    );
    const shape = write('shape.npz', zip([{ name: 'image.npy', data: npy('<f4', [2, 2, 28, 28], new Float32Array(4 * 784)) }]));
    expect((await dataError(loadSamples({ data: shape }, FM_INPUTS))).message).toBe(
      `${shape}: array "image": shape (2, 2, 28, 28) gives samples of shape [1, 2, 28, 28] but the model's input "image" is [batch, 1, 28, 28] (dim 1 must be 1)`,
    );
    const fortran = write('f.npy', Buffer.from(NPY_FORTRAN, 'base64'));
    expect((await dataError(loadSamples({ data: fortran }, X_INPUTS))).message).toBe(
      `${fortran}: arrays in Fortran order (fortran_order: True) are not supported: save a C-order array (np.ascontiguousarray)`,
    );
    const floats = write('floats.npy', npy('<f4', [1, 128], new Float32Array(128)));
    expect((await dataError(loadSamples({ data: floats }, SPAM_INPUTS))).message).toBe(`${floats}: array: holds float32 values but the model's input "input_ids" is int64`);
    expect(() => parseNpy(npy('>f4', [1], new Float32Array(1)))).toThrow(/unsupported dtype '>f4'/);
  });

  it('JS modules: arrays, (async) generators and functions, typed arrays and nested arrays', async () => {
    const mod = write(
      'data.mjs',
      `export default async function* () {
        for (let i = 0; i < 100; i++) yield { inputs: { x: i % 2 ? new Float32Array([i, i, i]) : [[i, 0, 1]] }, label: i % 3 };
      }`,
    );
    const s = await loadSamples({ data: mod, samples: 4 }, X_INPUTS);
    expect(s.map((x) => Array.from(x.feeds.x.data as Float32Array))).toEqual([[0, 0, 1], [1, 1, 1], [2, 0, 1], [3, 3, 3]]);
    expect(s.map((x) => x.feeds.x.dims)).toEqual([[1, 3], [1, 3], [1, 3], [1, 3]]);
    expect(s.map((x) => x.label)).toEqual([0, 1, 2, 0]);
    const arr = write('arr.mjs', `export const samples = [{ inputs: { x: { dtype: 'float64', dims: [1, 3], data: new Float64Array([1, 2, 3]) } } }];`);
    expect(Array.from((await loadSamples({ data: arr }, X_INPUTS))[0].feeds.x.data as Float32Array)).toEqual([1, 2, 3]);
    // TypeScript modules load when the current loader compiles TypeScript (vitest, tsx).
    const ts = write('data.ts', `const n: number = 2;\nexport default () => Array.from({ length: n }, (_, i) => ({ inputs: { x: [[i, i, i]] } }));`);
    expect((await loadSamples({ data: ts }, X_INPUTS)).length).toBe(2);
    const badName = write('bad.mjs', `export default [{ inputs: { y: [[1, 2, 3]] } }];`);
    expect((await dataError(loadSamples({ data: badName }, X_INPUTS))).message).toBe(`${badName}: sample 1: input "y" is not an input of the model (did you mean "x"?); its inputs are "x"`);
  });

  it('random: deterministic by seed, symbolic dims from shapes, a missing one is named', async () => {
    const a = await loadSamples({ data: 'random', samples: 3, shapes: { sequence: 7 } }, BERT_INPUTS, { seed: 5 });
    const b = await loadSamples({ data: 'random', samples: 3, shapes: { sequence: 7 } }, BERT_INPUTS, { seed: 5 });
    const c = await loadSamples({ data: 'random', samples: 3, shapes: { sequence: 7 } }, BERT_INPUTS, { seed: 6 });
    expect(a[2].feeds.input_ids.dims).toEqual([1, 7]);
    expect(a[2].feeds.input_ids.data).toEqual(b[2].feeds.input_ids.data);
    expect(a[2].feeds.input_ids.data).not.toEqual(c[2].feeds.input_ids.data);
    for (const v of a[0].feeds.input_ids.data as BigInt64Array) expect(v >= 0n && v < 100n).toBe(true);
    const img = await loadSamples({ data: 'random' }, FM_INPUTS);
    expect(img).toHaveLength(16);
    expect(img[0].feeds.image.dims).toEqual([1, 1, 28, 28]);
    expect((await dataError(loadSamples({ data: 'random' }, BERT_INPUTS))).message).toBe(
      'random data: input "input_ids" has symbolic dim "sequence" (shape [batch, sequence]): give its size in shapes, e.g. shapes: { sequence: 16 }',
    );
  });

  it('stackSamples concatenates along a symbolic batch axis', async () => {
    const s = await loadSamples({ data: 'random', samples: 3, shapes: { sequence: 4 } }, BERT_INPUTS);
    const st = stackSamples(s, BERT_INPUTS)!;
    expect(st.feeds.input_ids.dims).toEqual([3, 4]);
    expect(Array.from(st.feeds.attention_mask.data as BigInt64Array).slice(8)).toEqual(Array.from(s[2].feeds.attention_mask.data as BigInt64Array));
    const other = await loadSamples({ data: 'random', samples: 1, shapes: { sequence: 5 } }, BERT_INPUTS);
    expect(stackSamples([...s, ...other], BERT_INPUTS)).toBeUndefined();
    expect(stackSamples(s, [{ name: 'input_ids', type: 'int64', dims: [1, 'sequence'] }])).toBeUndefined();
  });

  it('spamTokenize follows the fixture tokenizer', () => {
    const ids = spamTokenize('Subject: hi\nFrom: x\n\nHé!');
    expect(ids.length).toBe(128);
    expect(Array.from(ids.slice(0, 6))).toEqual([1n, 72n + 2n, 0xc3n + 2n, 0xa9n + 2n, 33n + 2n, 0n]);
    expect(spamTokenize('x\n\n' + 'a'.repeat(300))[127]).toBe(97n + 2n);
  });
});
