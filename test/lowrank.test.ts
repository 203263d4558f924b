/**
 * lowrank step and the dense linear algebra under it: Cholesky (plain and blocked with ORT), symmetric
 * eigen, randomized vs exact SVD, exact factor rewrites of MatMul / Gemm / Conv, and the real fixtures
 * (held-out evaluation; calibration uses other samples).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { Tensor } from 'onnxruntime-node';
import { readModel } from '../src/onnx/io.js';
import { makeAttribute, makeNode } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../src/onnx/types.js';
import { loadFashionMnist, loadSpamTestSet } from '../bench/lib/fixtures.js';
import { evaluateModels, type EvalReport } from '../src/eval/evaluate.js';
import { openSession, runSession } from '../src/runtime/session.js';
import type { Sample } from '../src/data/types.js';
import type { StepContext } from '../src/transforms/types.js';
import type { LowrankStep } from '../src/recipe/types.js';
import { cholesky, gaussian, matmulSmall, orthonormalizeRows } from '../src/linalg/dense.js';
import { symmetricEigen } from '../src/linalg/eigen.js';
import { choleskyBlocked, dampedCholesky, NotPositiveDefiniteError, solveDamped } from '../src/linalg/blocked.js';
import { OrtMatrixEngine } from '../src/runtime/matrix.js';
import { exactSvd, lowrankStep, randomizedSvd, rankForEnergy, singularValues, type LowrankLayerReport } from '../src/transforms/lowrank/index.js';
import { frobenius2 } from '../src/transforms/lowrank/svd.js';

const F = new URL('./fixtures/', import.meta.url).pathname;
const SPAM = `${F}spam-tinybert/model.onnx`;
const CNN = `${F}fmnist-cnn/model.onnx`;
const engine = new OrtMatrixEngine(1);
afterAll(() => engine.release());

function ctx(calibration?: Sample[]): StepContext {
  return { file: 'model.onnx', original: undefined as unknown as ModelProto, calibration, device: 'cpu', seed: 1, log: () => {} };
}

function params(p: Partial<LowrankStep>): LowrankStep {
  return { method: 'svd', include: [], exclude: [], ...p };
}

/** A matrix with a decaying spectrum: A·diag(1/(1+j/20))·B. */
async function decaying(K: number, N: number, seed = 1): Promise<Float32Array> {
  const kk = Math.min(K, N);
  const a = gaussian(K * kk, seed);
  for (let i = 0; i < K; i++) for (let j = 0; j < kk; j++) a[i * kk + j] /= 1 + j / 20;
  return engine.matmul(a, K, kk, gaussian(kk * N, seed + 1), N);
}

async function relError(w: Float32Array, left: Float32Array, right: Float32Array, K: number, r: number, N: number): Promise<number> {
  const p = await engine.matmul(left, K, r, right, N);
  let d = 0;
  for (let i = 0; i < w.length; i++) d += (w[i] - p[i]) ** 2;
  return Math.sqrt(d / frobenius2(w));
}

describe('linear algebra', () => {
  it('Cholesky (JS and blocked in ORT) and damped solves', async () => {
    for (const n of [40, 600]) {
      const x = Float64Array.from(gaussian((n + 10) * n, n));
      const a = await engine.gram(x, n + 10, n);
      const l = Float64Array.from(a);
      expect(n > 256 ? await choleskyBlocked(engine, l, n) : cholesky(l, n)).toBe(true);
      const llt = await engine.gemm(l, [n, n], l, [n, n], { transB: true });
      let e = 0;
      for (let i = 0; i < a.length; i++) e = Math.max(e, Math.abs(llt[i] - a[i]));
      expect(e).toBeLessThan(1e-9 * n);
      const b = Float64Array.from(gaussian(n * 3, 9));
      const sol = Float64Array.from(b);
      await solveDamped(a, n, sol, 3, { damping: 0, engine });
      const ax = matmulSmall(a, n, n, sol, 3);
      for (let i = 0; i < b.length; i++) expect(ax[i]).toBeCloseTo(b[i], 6);
      // The same solve in JS alone (no engine: unblocked at any size).
      const js = Float64Array.from(b);
      await solveDamped(a, n, js, 3, { damping: 0 });
      const axJs = matmulSmall(a, n, n, js, 3);
      for (let i = 0; i < b.length; i++) expect(axJs[i]).toBeCloseTo(b[i], 6);
    }
    expect(cholesky(Float64Array.from([1, 2, 2, 1]), 2)).toBe(false);
    // Indefinite whatever the damping (a NaN), even from δ = 0: an error, not an endless loop.
    await expect(dampedCholesky(Float64Array.from([Number.NaN, 0, 0, 1]), 2, 0)).rejects.toThrow(NotPositiveDefiniteError);
  });

  it('symmetric eigen-decomposition and Gram–Schmidt', () => {
    const n = 50;
    const x = gaussian(n * n, 3);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = x[i * n + j] + x[j * n + i];
    const { values, vectors } = symmetricEigen(a, n);
    for (let j = 0; j < n; j++) {
      if (j) expect(values[j]).toBeLessThanOrEqual(values[j - 1]);
      const v = vectors!.subarray(j * n, j * n + n);
      const av = matmulSmall(a, n, n, v, 1);
      for (let i = 0; i < n; i++) expect(av[i]).toBeCloseTo(values[j] * v[i], 9);
    }
    const q = Float64Array.from(gaussian(5 * 40, 4));
    orthonormalizeRows(q, 5, 40);
    const g = matmulSmall(q, 5, 40, Float64Array.from({ length: 200 }, (_, i) => q[(i % 5) * 40 + Math.floor(i / 5)]), 5);
    for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) expect(g[i * 5 + j]).toBeCloseTo(i === j ? 1 : 0, 12);
  });

  it('randomized SVD (ORT multiplies, 2 power iterations) is within 2 % of the optimal error', async () => {
    for (const [K, N, r] of [
      [600, 300, 24],
      [300, 700, 40],
    ]) {
      const w = await decaying(K, N);
      const exact = await exactSvd(engine, w, K, N, r);
      const rand = await randomizedSvd(engine, w, K, N, r, { seed: 5 });
      const eExact = await relError(w, exact.left, exact.right, K, r, N);
      const eRand = await relError(w, rand.left, rand.right, K, r, N);
      expect(eRand).toBeLessThan(eExact * 1.02);
      for (let j = 0; j < 5; j++) expect(rand.sigma[j] / exact.sigma[j]).toBeCloseTo(1, 3);
      // the exact error is the energy left out
      let tail = 0;
      for (let j = r; j < exact.sigma.length; j++) tail += exact.sigma[j] ** 2;
      expect(eExact).toBeCloseTo(Math.sqrt(tail / exact.total), 4);
      const sv = await singularValues(engine, w, K, N);
      expect(sv[0] / exact.sigma[0]).toBeCloseTo(1, 6);
      const r90 = rankForEnergy(sv, exact.total, 0.9);
      let kept = 0;
      for (let j = 0; j < r90; j++) kept += sv[j] ** 2;
      expect(kept / exact.total).toBeGreaterThanOrEqual(0.9 - 1e-9);
      expect((kept - sv[r90 - 1] ** 2) / exact.total).toBeLessThan(0.9);
    }
  });
});

// ------------------------------------------------------------------------------- exact rewrites

function model(nodes: NodeProto[], inits: TensorProto[], x: number[], y: number[]): ModelProto {
  const io = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => ({ dimValue: d })) } } }, metadataProps: [] });
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
    graph: { name: 't', node: nodes, initializer: inits, input: [io('x', x)], output: [io('y', y)], valueInfo: [], quantizationAnnotation: [], sparseInitializer: [], metadataProps: [] },
  };
}

async function run(m: ModelProto, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const { session } = await openSession(m);
  try {
    return (await runSession(session, { x: new Tensor('float32', x, dims) })).y.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('factor rewrites are exact for matrices of low rank', () => {
  it('MatMul, Gemm (transB, alpha, beta, bias) and k×k Conv', async () => {
    const rank4 = async (K: number, N: number, seed: number) => engine.matmul(gaussian(K * 4, seed), K, 4, gaussian(4 * N, seed + 1), N);
    const cases: { m: ModelProto; x: number[]; nodes: number }[] = [];
    // MatMul [24, 40] + a Relu reader so the layer is not the final classifier
    cases.push({
      m: model([makeNode('MatMul', ['x', 'w'], ['h'], { name: 'mm' }), makeNode('Relu', ['h'], ['r']), makeNode('ReduceSum', ['r'], ['y'], { attributes: [makeAttribute('keepdims', 1, true)] })], [makeTensor('w', 1, [24, 40], await rank4(24, 40, 1))], [3, 24], [1, 1]),
      x: [3, 24],
      nodes: 4,
    });
    // Gemm transB=1 alpha=0.5 beta=2 with bias: B stored [N=30, K=20]
    cases.push({
      m: model(
        [
          makeNode('Gemm', ['x', 'b', 'c'], ['h'], { name: 'gemm', attributes: [makeAttribute('transB', 1, true), makeAttribute('alpha', 0.5), makeAttribute('beta', 2)] }),
          makeNode('Relu', ['h'], ['r']),
          makeNode('ReduceSum', ['r'], ['y'], { attributes: [makeAttribute('keepdims', 1, true)] }),
        ],
        [makeTensor('b', 1, [30, 20], await rank4(30, 20, 3)), makeTensor('c', 1, [30], gaussian(30, 5))],
        [2, 20],
        [1, 1],
      ),
      x: [2, 20],
      nodes: 4,
    });
    // Conv 3×3, 8 → 16 channels, stride 2, pads 1: W as [16, 72] of rank 4
    const wc = await rank4(16, 72, 7);
    cases.push({
      m: model(
        [
          makeNode('Conv', ['x', 'wc', 'bc'], ['h'], { name: 'conv', attributes: [makeAttribute('kernel_shape', [3, 3], true), makeAttribute('strides', [2, 2], true), makeAttribute('pads', [1, 1, 1, 1], true)] }),
          makeNode('Relu', ['h'], ['r']),
          makeNode('ReduceSum', ['r'], ['y'], { attributes: [makeAttribute('keepdims', 1, true)] }),
        ],
        [makeTensor('wc', 1, [16, 8, 3, 3], wc), makeTensor('bc', 1, [16], gaussian(16, 8))],
        [1, 8, 9, 9],
        [1, 1, 1, 1],
      ),
      x: [1, 8, 9, 9],
      nodes: 4,
    });
    for (const c of cases) {
      const { model: out, report } = await lowrankStep(params({ rank: 4 }))(c.m, ctx());
      expect(report.layers).toHaveLength(1);
      expect(out.graph!.node).toHaveLength(c.nodes);
      const l = report.layers[0] as LowrankLayerReport;
      expect(l.rank).toBe(4);
      expect(l.weightError).toBeLessThan(1e-5);
      expect(l.energy).toBeGreaterThan(0.99999);
      const x = gaussian(c.x.reduce((a, b) => a * b, 1), 11);
      const a = await run(c.m, x, c.x);
      const b = await run(out, x, c.x);
      for (let i = 0; i < a.length; i++) expect(b[i]).toBeCloseTo(a[i], 2);
    }
  });
});

// ------------------------------------------------------------------------------- fixtures

describe('fixtures (held-out evaluation)', () => {
  const spam = loadSpamTestSet(`${F}spam-tinybert/test-split.json`);
  const spamCal = spam.slice(0, 128);
  const spamEval = spam.slice(200);
  const cnn = loadFashionMnist(`${F}fmnist-cnn/t10k-images-idx3-ubyte.gz`, `${F}fmnist-cnn/t10k-labels-idx1-ubyte.gz`, 2256);
  const cnnCal = cnn.slice(0, 256);
  const cnnEval = cnn.slice(256);

  const log = (label: string, layers: LowrankLayerReport[], ev: EvalReport, totals: Record<string, unknown>) => {
    console.log(
      `${label}: params ${totals.paramsBefore} → ${totals.paramsAfter}, file ${totals.bytesBefore} → ${totals.bytesAfter}; accuracy ${ev.original.accuracy?.toFixed(4)} → ${ev.compressed.accuracy?.toFixed(4)} ` +
        `(drop ${((ev.original.accuracy! - ev.compressed.accuracy!) * 100).toFixed(2)} points), logits relRms ${ev.metrics.relRms.toFixed(4)}`,
    );
    for (const l of layers) console.log(`  ${l.name} [${l.shape}] → ${JSON.stringify(l.factors)} energy ${l.energy?.toFixed(3)} (${l.energyOf}) ${l.errorKind} error ${l.error?.toFixed(4)}`);
  };

  it('energy 0.9 on the CNN first Gemm and on the transformer feed-forward layers', async () => {
    for (const [label, file, include, cal, evalSet] of [
      ['cnn /9/Gemm', CNN, ['/9/Gemm'], cnnCal, cnnEval],
      ['spam FFN', SPAM, ['*/linear1/*', '*/linear2/*'], spamCal, spamEval],
    ] as const) {
      const m = readModel(file);
      const { model, report } = await lowrankStep(params({ energy: 0.9, include: [...include] }))(m, ctx(cal));
      const layers = report.layers as LowrankLayerReport[];
      expect(layers.length).toBe(include.length === 1 ? 1 : 4);
      const t = report.totals as Record<string, number>;
      expect(t.paramsAfter).toBeLessThan(t.paramsBefore);
      for (const l of layers) expect(l.energy).toBeGreaterThanOrEqual(0.9);
      const ev = await evaluateModels(m, model, evalSet, { runs: 0 });
      log(`${label} energy 0.9`, layers, ev, t);
      expect(ev.compressed.accuracy!).toBeGreaterThan(ev.original.accuracy! - 0.02);
    }
  });

  it('activation-aware SVD has a lower held-out output error than plain SVD at the same rank', async () => {
    for (const [label, file, include, rank, cal, evalSet] of [
      ['spam FFN', SPAM, ['*/linear1/*', '*/linear2/*'], 32, spamCal, spamEval],
      ['cnn /9/Gemm', CNN, ['/9/Gemm'], 16, cnnCal, cnnEval.slice(0, 1000)],
    ] as const) {
      const m = readModel(file);
      const rel: Record<string, number> = {};
      for (const method of ['svd', 'activation-aware'] as const) {
        const { model, report } = await lowrankStep(params({ rank, method, include: [...include] }))(m, ctx(cal));
        const layers = report.layers as LowrankLayerReport[];
        expect(layers.every((l) => l.rank === rank && l.errorKind === 'output' && l.method === method)).toBe(true);
        const ev = await evaluateModels(m, model, evalSet, { runs: 0 });
        log(`${label} rank ${rank} ${method}`, layers, ev, report.totals!);
        rel[method] = ev.metrics.relRms;
      }
      expect(rel['activation-aware']).toBeLessThan(rel.svd);
    }
  });
});
