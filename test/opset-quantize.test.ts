/**
 * Quantizing models whose opset is older than the quantized forms need, through the CLI:
 *
 * - an opset-9 model with its weights in Constant nodes (as Paddle2ONNX writes them) and ops whose
 *   signatures changed since (Clip, Pad, Slice, Upsample, ReduceMean, Squeeze, Unsqueeze, Split,
 *   Dropout, Softmax with the old axis meaning, TopK): int8, int4, dynamic and q4f16 builds succeed,
 *   load and run in onnxruntime close to float32, and the manifest records the upgrade;
 * - an opset-12 model whose BatchNormalization statistics outputs are read (no opset-14 form): int4
 *   is delivered as int8 per channel at opset 13, said in the per-layer table and one warning, and
 *   `quantize.strict: true` fails the build with exit 1;
 * - Silero VAD v5 and legacy: int4 is never larger than int8, layer by layer (a Conv with one input
 *   channel has K = 1 per tap: 4-bit with block scales is larger than 8-bit per channel).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo, opsetVersion } from '../src/onnx/graph.js';
import { readModel } from '../src/onnx/io.js';
import { makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto, NodeProto } from '../src/onnx/types.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { quantizeStep } from '../src/transforms/quantize/index.js';
import { seededRandom } from '../src/random.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'opset-quantize-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const rand = seededRandom(7);
const weights = (dims: number[], scale = 0.2) => Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (rand() * 2 - 1) * scale);
const constant = (name: string, dims: number[], data: Float32Array | BigInt64Array, type: number = DataType.FLOAT): NodeProto =>
  makeNode('Constant', [], [name], { name: `${name}_const`, attributes: [makeAttribute('value', makeTensor(name, type, dims, data))] });
const ints = (v: number[]) => v;

/** x [1,3,8,8] → Conv 64 → Clip → Pad → Slice → Upsample ×2 → Conv 1×1 32 → ReduceMean → Squeeze → Gemm 64
 *  → Dropout → Unsqueeze → Split → MatMul ×2 → Add → Softmax (axis 1 of [1,1,48]: the old meaning is
 *  "all 48") → TopK 5. Weights in Constant nodes, opset 9. */
function oldModel(): ModelProto {
  const n = makeNode;
  const a = makeAttribute;
  const nodes: NodeProto[] = [
    constant('w1', [64, 3, 3, 3], weights([64, 3, 3, 3], 0.3)),
    constant('b1', [64], weights([64], 0.1)),
    n('Conv', ['x', 'w1', 'b1'], ['c1'], { name: 'conv1', attributes: [a('pads', ints([1, 1, 1, 1]), true)] }),
    n('Clip', ['c1'], ['r1'], { name: 'clip', attributes: [a('min', 0), a('max', 6)] }),
    n('Pad', ['r1'], ['p1'], { name: 'pad', attributes: [a('pads', ints([0, 0, 1, 1, 0, 0, 1, 1]), true), a('value', 0.5)] }),
    n('Slice', ['p1'], ['s1'], { name: 'slice', attributes: [a('starts', ints([1, 2]), true), a('ends', ints([9, 10]), true), a('axes', ints([2, 3]), true)] }),
    constant('up_scales', [4], Float32Array.of(1, 1, 2, 2)),
    n('Upsample', ['s1', 'up_scales'], ['u1'], { name: 'upsample', attributes: [a('mode', 'nearest')] }),
    constant('w2', [32, 64, 1, 1], weights([32, 64, 1, 1])),
    n('Conv', ['u1', 'w2'], ['c2'], { name: 'conv2' }),
    n('ReduceMean', ['c2'], ['m'], { name: 'mean', attributes: [a('axes', ints([2, 3]), true), a('keepdims', 1, true)] }),
    n('Squeeze', ['m'], ['sq'], { name: 'squeeze', attributes: [a('axes', ints([2, 3]), true)] }),
    constant('wg', [32, 64], weights([32, 64])),
    constant('bg', [64], weights([64], 0.1)),
    n('Gemm', ['sq', 'wg', 'bg'], ['g'], { name: 'gemm' }),
    n('Dropout', ['g'], ['d'], { name: 'dropout', attributes: [a('ratio', 0.2)] }),
    n('Unsqueeze', ['d'], ['un'], { name: 'unsqueeze', attributes: [a('axes', ints([1]), true)] }),
    n('Split', ['un'], ['h1', 'h2'], { name: 'split', attributes: [a('axis', 2, true), a('split', ints([32, 32]), true)] }),
    constant('wm1', [32, 48], weights([32, 48])),
    constant('wm2', [32, 48], weights([32, 48])),
    n('MatMul', ['h1', 'wm1'], ['mm1'], { name: 'matmul1' }),
    n('MatMul', ['h2', 'wm2'], ['mm2'], { name: 'matmul2' }),
    n('Add', ['mm1', 'mm2'], ['logits'], { name: 'add' }),
    n('Softmax', ['logits'], ['probs'], { name: 'softmax', attributes: [a('axis', 1, true)] }),
    n('TopK', ['probs'], ['top', 'top_i'], { name: 'topk', attributes: [a('k', 5, true)] }),
  ];
  const out = (name: string, type: number, dims: number[]) => makeValueInfo(name, type, dims);
  const g = makeGraph('old', nodes, [makeValueInfo('x', DataType.FLOAT, [1, 3, 8, 8])], [out('probs', DataType.FLOAT, [1, 1, 48]), out('top', DataType.FLOAT, [1, 1, 5]), out('top_i', DataType.INT64, [1, 1, 5])]);
  const m = makeModel(g, 9);
  m.irVersion = 4;
  return m;
}

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const spies = [
    vi.spyOn(console, 'log').mockImplementation((...x: unknown[]) => void out.push(x.join(' ') + '\n')),
    vi.spyOn(console, 'error').mockImplementation((...x: unknown[]) => void err.push(x.join(' ') + '\n')),
    vi.spyOn(console, 'warn').mockImplementation((...x: unknown[]) => void err.push(x.join(' ') + '\n')),
    vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => (out.push(String(s)), true)),
    vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => (err.push(String(s)), true)),
  ];
  try {
    return { code: await main(args), out: out.join(''), err: err.join('') };
  } finally {
    for (const s of spies) s.mockRestore();
  }
}

function project(name: string, model: ModelProto, recipe: string): string {
  const dir = join(tmp, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'model.onnx'), encodeModelToBytes(model));
  writeFileSync(join(dir, 'compress.yaml'), recipe);
  return dir;
}

async function run(bytes: Uint8Array, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    return (await s.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await s.release();
  }
}

/** The quantize step's report (other steps, e.g. simplify, may come first). */
const quantizeOf = (m: Manifest) => m.steps.find((s) => s.step === 'quantize')!;

interface Manifest {
  steps: { step: string; totals: { opset?: { from: number; to: number; converted: { op: string; at: number }[]; check?: { outputs: number } } }; layers: { name: string; requested?: string; delivered?: string; reason?: string }[] }[];
  warnings: string[];
}

describe('an opset-9 model with Constant-node weights', () => {
  it('int8, int4, dynamic and q4f16 builds succeed, run in onnxruntime close to float32, and record the upgrade', async () => {
    const model = oldModel();
    const dir = project('old9', model, [
      'defaults:',
      '  device: cpu',
      'models:',
      '  old:',
      '    source: model.onnx',
      '    variants:',
      '      int8: { quantize: { dtype: int8 } }',
      '      int4: { quantize: { dtype: int4 } }',
      '      dynamic: { quantize: { dtype: int8, format: dynamic } }',
      '      q4f16: { quantize: { dtype: int4, float16: true } }',
      '',
    ].join('\n'));
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--no-cache', '--json');
    expect(r.code, r.err).toBe(0);
    const rows = JSON.parse(r.out) as { id: string; output: string; manifest: string }[];
    expect(rows.map((x) => x.id).sort()).toEqual(['old', 'old.dynamic', 'old.int4', 'old.int8', 'old.q4f16']);

    const x = new ort.Tensor('float32', Float32Array.from({ length: 192 }, (_, i) => Math.cos(i)), [1, 3, 8, 8]);
    const ref = await run(encodeModelToBytes(model), { x }).catch(() => undefined);
    // onnxruntime 1.30 still runs this opset-9 model: the reference for every variant.
    expect(ref).toBeDefined();
    for (const row of rows.filter((x) => x.id !== 'old')) {
      const out = readModel(row.output);
      expect(opsetVersion(out, ''), row.id).toBe(row.id === 'old.int8' ? 13 : row.id === 'old.dynamic' ? 11 : 21);
      const got = await run(readFileSync(row.output), { x });
      const p = got.probs.data as Float32Array;
      const q = ref!.probs.data as Float32Array;
      // Softmax kept its old meaning: a distribution over all 48 values (not 48 ones).
      expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 3);
      for (let i = 0; i < 48; i++) expect(Math.abs(p[i] - q[i]), `${row.id} probs[${i}]`).toBeLessThan(0.01);
      const m = JSON.parse(readFileSync(row.manifest, 'utf8')) as Manifest;
      const up = quantizeOf(m).totals.opset!;
      expect(up.from).toBe(9);
      expect(up.check!.outputs).toBeGreaterThan(0);
      const converted = up.converted.map((c) => `${c.op}@${c.at}`);
      // DynamicQuantizeLinear needs 11 only: the opset-13 changes are not made for it. (Dropout is gone:
      // the simplify step removes it before quantize.)
      const at13 = row.id === 'old.dynamic' ? [] : ['Squeeze@13', 'Unsqueeze@13', 'Split@13', 'Softmax@13'];
      for (const k of ['Clip@11', 'Pad@11', 'Slice@10', 'Upsample@10', 'Resize@11', 'TopK@10', ...at13]) expect(converted, row.id).toContain(k);
      expect(m.warnings.join('\n')).toMatch(/raised from 9 to (11|13|21)/);
    }
    // 4-bit where it is smaller: conv1's reduce axis has 3 values (a scale per 3 codes), so it is 8-bit.
    const m4 = JSON.parse(readFileSync(rows.find((x) => x.id === 'old.int4')!.manifest, 'utf8')) as Manifest;
    const conv1 = quantizeOf(m4).layers.find((l) => l.name === 'conv1')!;
    expect(conv1).toMatchObject({ requested: 'int4:32', delivered: 'int8', reason: expect.stringMatching(/4-bit form with scales \(\d+ B\) is not smaller than 8-bit/) });
    expect(quantizeOf(m4).layers.find((l) => l.name === 'matmul1')).toMatchObject({ requested: 'int4:32', delivered: 'int4:32' });
    expect(m4.warnings.filter((w) => /layers delivered at another precision/.test(w))).toHaveLength(1);
    // The HTML report's per-layer table says it too.
    const html = readFileSync(join(dir, 'out', 'onnx-compress-report.html'), 'utf8');
    expect(html).toMatch(/asked int4:32, got int8: its 4-bit form with scales \(\d+ B\) is not smaller than 8-bit/);
  });
});

/** Opset 12: Conv → BatchNormalization whose running mean is a graph output (training mode). */
function bnModel(): ModelProto {
  const n = makeNode;
  const nodes: NodeProto[] = [
    constant('w', [32, 64, 1, 1], weights([32, 64, 1, 1])),
    n('Conv', ['x', 'w'], ['c'], { name: 'conv' }),
    constant('s', [32], Float32Array.from({ length: 32 }, () => 1)),
    constant('b', [32], new Float32Array(32)),
    constant('mu', [32], new Float32Array(32)),
    constant('var', [32], Float32Array.from({ length: 32 }, () => 1)),
    n('BatchNormalization', ['c', 's', 'b', 'mu', 'var'], ['y', 'running_mean', 'running_var', 'saved_mean', 'saved_var'], { name: 'bn' }),
  ];
  const g = makeGraph('bn', nodes, [makeValueInfo('x', DataType.FLOAT, [1, 64, 2, 2])], [makeValueInfo('y', DataType.FLOAT, [1, 32, 2, 2]), makeValueInfo('running_mean', DataType.FLOAT, [32])]);
  return makeModel(g, 12);
}

describe('a model whose opset cannot reach 21', () => {
  it('int4 is delivered as int8 per channel at opset 13, said per layer and in one warning; strict fails with exit 1', async () => {
    const dir = project('bn12', bnModel(), 'defaults:\n  device: cpu\nmodels:\n  bn:\n    source: model.onnx\n    quantize: { dtype: int4 }\n  strict:\n    source: model.onnx\n    quantize: { dtype: int4, strict: true }\n');
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--no-cache', '--json');
    expect(r.code).toBe(1);
    const rows = JSON.parse(r.out) as ({ id: string; manifest: string } | { id: string; error: string; exitCode: number })[];
    const strict = rows.find((x) => x.id === 'strict') as { error: string; exitCode: number };
    expect(strict.exitCode).toBe(1);
    expect(strict.error).toMatch(/quantize\.strict: 1 of 1 layers delivered at another precision than the requested int4:32: 1 as int8 \(4-bit DequantizeLinear needs opset 21 \(BatchNormalization node "bn" cannot be converted to opset 21/);
    const ok = rows.find((x) => x.id === 'bn') as { manifest: string };
    const m = JSON.parse(readFileSync(ok.manifest, 'utf8')) as Manifest;
    expect(quantizeOf(m).totals.opset).toMatchObject({ from: 12, to: 13 });
    expect(quantizeOf(m).layers).toEqual([expect.objectContaining({ name: 'conv', requested: 'int4:32', delivered: 'int8', reason: expect.stringMatching(/needs opset 21 \(BatchNormalization node "bn"/) })]);
    const lines = m.warnings.filter((w) => /layers delivered at another precision/.test(w));
    expect(lines).toHaveLength(1);
    // No self-contradiction: one delivered precision, stated once.
    expect(lines[0]).not.toMatch(/per tensor/);
  });
});

describe('a weight whose quantized form is not smaller than float', () => {
  it('stays float (float16 under q4f16), with the reason in the table; strict makes it an error', async () => {
    // Depthwise-like Conv [1024, 1, 1, 1]: one scale per weight even per channel.
    const nodes = [constant('w', [1024, 1, 1, 1], weights([1024, 1, 1, 1])), makeNode('Conv', ['x', 'w'], ['y'], { name: 'dw', attributes: [makeAttribute('group', 1024, true)] })];
    const model = makeModel(makeGraph('dw', nodes, [makeValueInfo('x', DataType.FLOAT, [1, 1024, 2, 2])], [makeValueInfo('y', DataType.FLOAT, [1, 1024, 2, 2])]), 17);
    const ctx = { file: 'dw.onnx', original: model, device: 'cpu' as const, seed: 1, log: () => {} };
    const r8 = await quantizeStep(quantizeDefaults('int8'))(model, ctx);
    expect(r8.report.layers).toEqual([expect.objectContaining({ name: 'dw', requested: 'int8', delivered: 'float32', reason: 'its quantized form (5120 B) is not smaller than float32 (4096 B)', bytesAfter: 4096 })]);
    expect(r8.report.warnings).toEqual(['1 of 1 layers delivered at another precision than the requested int8: 1 as float32 (its quantized form is not smaller than float32); see the per-layer table']);
    const q4f16 = await quantizeStep({ ...quantizeDefaults('int4'), float16: true })(model, ctx);
    expect(q4f16.report.layers[0]).toMatchObject({ requested: 'int4:32', delivered: 'float16' });
    await expect(quantizeStep({ ...quantizeDefaults('int8'), strict: true })(model, ctx)).rejects.toThrow(/dw\.onnx: quantize\.strict: 1 of 1 layers delivered at another precision than the requested int8: 1 as float32/);
  });
});

describe('size-aware 4-bit on Silero VAD', () => {
  const require = createRequire(import.meta.url);
  const dir = dirname(require.resolve('@ricky0123/vad-web/dist/silero_vad_v5.onnx'));
  for (const file of ['silero_vad_v5.onnx', 'silero_vad_legacy.onnx']) {
    it(`${file}: the upgrade to 21 (where a layer stays 4-bit) is checked on a frame; int4 bytes ≤ int8 bytes; one-input-channel Convs are 8-bit with the reason stated`, async () => {
      const path = join(dir, file);
      const model = readModel(path);
      // One frame with its recurrent state: the model only runs at sr 16000 or 8000, which random data
      // does not know, so the upgrade is checked on this sample.
      const signal = (n: number) => new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => Math.sin(i / 5) * 0.3), [1, n]);
      const sr = new ort.Tensor('int64', BigInt64Array.of(16000n), []);
      const zeros = (dims: number[]) => new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b, 1)), dims);
      const feeds: Record<string, ort.Tensor> = file.includes('v5') ? { input: signal(576), state: zeros([2, 1, 128]), sr } : { input: signal(512), sr, h: zeros([2, 1, 64]), c: zeros([2, 1, 64]) };
      const ctx = { file: path, original: model, device: 'cpu' as const, seed: 1, log: () => {}, calibration: [{ feeds }] };
      const q8 = await quantizeStep(quantizeDefaults('int8'))(model, ctx);
      const q4 = await quantizeStep(quantizeDefaults('int4'))(model, ctx);
      if (file.includes('legacy')) expect(q4.report.warnings[0]).toMatch(/raised from 16 to 21 .* outputs equal the original's in onnxruntime on 1 input/);
      // v5: every weight it quantizes feeds the LSTM whose state is carried, so all are 8-bit
      // (src/transforms/quantize/recurrent.ts): no 4-bit form, and no upgrade for nothing.
      else expect(q4.report.totals!.opset).toBeUndefined();
      const b8 = encodeModelToBytes(q8.model).byteLength;
      const b4 = encodeModelToBytes(q4.model).byteLength;
      expect(b4).toBeLessThanOrEqual(b8);
      // Convs with one input channel (K = 1 per kernel tap): a 4-bit scale per few codes. Filterbank convs
      // (≥ 64 taps) stay float by default; the short ones left are 8-bit, with the reason.
      const oneChannel = q4.report.layers.filter((l) => l.op === 'Conv' && l.shape[1] === 1);
      for (const l of oneChannel) expect(l).toMatchObject({ delivered: 'int8', reason: expect.stringMatching(/not smaller than 8-bit/) });
      if (file.includes('legacy')) expect(oneChannel.length).toBeGreaterThan(0);
      for (const l of q4.report.layers) expect(l.bytesAfter).toBeLessThanOrEqual(q8.report.layers.find((x) => x.weight === l.weight)!.bytesAfter);
    });
  }
});
