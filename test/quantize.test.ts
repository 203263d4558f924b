/**
 * The quantize step piece by piece, on small generated models: kernels and byte layouts, weight
 * selection, op forms per target, the opset-21 raise, float16 conversion, GPTQ's linear algebra, lazy
 * reading and the web compatibility check. Real-model accuracy is in quantize-fixtures.test.ts and
 * quantize-vad.test.ts.
 */
import * as ort from 'onnxruntime-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CompressError } from '../src/errors.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType } from '../src/onnx/dtypes.js';
import { relativeRms } from '../src/eval/metrics.js';
import { runModel } from './ort-graph.js';
import { makeAttribute, makeNode } from '../src/onnx/graph.js';
import { readModel, writeModel } from '../src/onnx/io.js';
import { makeTensor, tensorFloat32 } from '../src/onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../src/onnx/types.js';
import { allGraphs } from '../src/onnx/walk.js';
import type { QuantizeStep } from '../src/recipe/types.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { checkWebCompatibility, quantizeStep, readModelLazy, toFloat16Clamped } from '../src/transforms/quantize/index.js';
import { matMulNBitsWeights, packNibbles } from '../src/transforms/quantize/layout.js';
import { matmulSmall as matmulJs } from '../src/linalg/dense.js';
import { DenseEngine } from '../src/linalg/engine.js';
import { inverseCholeskyUpper } from '../src/linalg/inverse.js';
import { gptqQuantize } from '../src/transforms/quantize/gptq.js';
import { quantizeAxis, quantizeBlocks, quantizeBlocksColumns } from '../src/transforms/quantize/rtn-simd.js';
import { selectWeights } from '../src/transforms/quantize/select.js';
import { unsupportedOpOf } from '../src/transforms/quantize/webcheck.js';
import type { StepContext, StepResult } from '../src/transforms/types.js';

// ------------------------------------------------------------------ tiny model builder

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
}

function randn(n: number, seed: number, scale = 0.1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() + r() + r()) * scale);
}

function vi(name: string, elemType: number, dims: (number | string)[]): ValueInfoProto {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } }, metadataProps: [] };
}

function graph(nodes: NodeProto[], inits: TensorProto[], inputs: ValueInfoProto[], outputs: ValueInfoProto[]): GraphProto {
  return { node: nodes, name: 'g', initializer: inits, input: inputs, output: outputs, valueInfo: [], quantizationAnnotation: [], sparseInitializer: [], metadataProps: [] };
}

function model(g: GraphProto, opset = 17, ir = 8): ModelProto {
  return { irVersion: ir, opsetImport: [{ domain: '', version: opset }], metadataProps: [], trainingInfo: [], functions: [], graph: g };
}

const f32 = (name: string, dims: number[], data: Float32Array) => makeTensor(name, DataType.FLOAT, dims, data);

/** x [b, K] → MatMul W1 [K, N] → Gemm(W2 [M, N], transB=1, bias) → Gather-free MLP, plus an embedding. */
function mlp(opset = 17): ModelProto {
  const K = 64;
  const N = 96;
  const M = 48;
  return model(
    graph(
      [
        makeNode('Gather', ['emb', 'ids'], ['e'], { name: 'embed' }),
        makeNode('MatMul', ['e', 'w1'], ['h'], { name: 'up' }),
        makeNode('Relu', ['h'], ['r'], { name: 'act' }),
        makeNode('Gemm', ['r', 'w2', 'b2'], ['y'], { name: 'down', attributes: [makeAttribute('transB', 1, true), makeAttribute('alpha', 0.5), makeAttribute('beta', 2)] }),
        makeNode('Gemm', ['r', 'w3'], ['z'], { name: 'side' }),
      ],
      [f32('emb', [100, K], randn(100 * K, 1)), f32('w1', [K, N], randn(K * N, 2)), f32('w2', [M, N], randn(M * N, 3)), f32('b2', [M], randn(M, 4)), f32('w3', [N, 40], randn(N * 40, 5))],
      [vi('ids', DataType.INT64, ['b'])],
      [vi('y', DataType.FLOAT, ['b', M]), vi('z', DataType.FLOAT, ['b', 40])],
    ),
    opset,
  );
}

const idsSample = () => ({ feeds: { ids: new ort.Tensor('int64', BigInt64Array.from([3n, 17n, 42n, 99n, 0n]), [5]) } });

const base: QuantizeStep = quantizeDefaults('int8');

function ctx(m: ModelProto, extra: Partial<StepContext> = {}): StepContext {
  return { file: 'test.onnx', original: m, device: 'cpu', seed: 0, log: () => {}, ...extra };
}

/** Runs a model; `exact` keeps ORT from fusing DequantizeLinear → MatMul into int8-activation MatMulNBits. */
const run = (m: ModelProto, feeds: Record<string, ort.Tensor>, exact = false) =>
  runModel(m, feeds, { intraOpNumThreads: 1, interOpNumThreads: 1, ...(exact && { extra: { session: { qdq_matmulnbits_accuracy_level: '1' } } }) });


function ops(m: ModelProto): string[] {
  return allGraphs(m).flatMap((g) => g.node.map((n) => n.opType ?? ''));
}

const q = (p: Partial<QuantizeStep>, m: ModelProto, c?: Partial<StepContext>): Promise<StepResult> => quantizeStep({ ...base, ...p })(m, ctx(m, c));

// ------------------------------------------------------------------ kernels and layouts

describe('kernels and byte layouts', () => {
  it('per-channel symmetric int8: scale = max|x|/127 per channel, codes 128 ± q', () => {
    // [outer=2, C=2, inner=1]: channel 0 holds 1 and −0.25, channel 1 holds 2 and 0.
    const r = quantizeAxis(Float32Array.of(1, 2, -0.25, 0), 2, 2, 1, 8, true);
    expect(Array.from(r.scales)).toEqual([Math.fround(1 / 127), Math.fround(2 / 127)]);
    expect(Array.from(r.zeros)).toEqual([128, 128]);
    expect(Array.from(r.codes)).toEqual([255, 255, 128 - 32, 128]);
  });

  it('asymmetric keeps 0 exact; symmetric 4-bit maps the largest magnitude to −8 (negative scale when it is positive)', () => {
    const x = Float32Array.of(0.1, 0.7, 0, -0.2);
    const a = quantizeAxis(x, 1, 1, 4, 8, false);
    expect((x[2] * 0) / 1 + (a.codes[2] - a.zeros[0]) * a.scales[0]).toBe(0);
    const s = quantizeBlocks(x, 1, 4, 4, 4, true);
    expect(s.scales[0]).toBeCloseTo(0.7 / -8, 6);
    expect(s.codes[1]).toBe(0);
    for (let i = 0; i < 4; i++) expect(Math.abs((s.codes[i] - 8) * s.scales[0] - x[i])).toBeLessThanOrEqual(Math.abs(s.scales[0]) / 2 + 1e-7);
  });

  it('column-wise blocks of [K, N] equal row-wise blocks of its transpose', () => {
    const K = 70;
    const N = 9;
    const x = randn(K * N, 41, 1);
    const xt = new Float32Array(K * N);
    for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) xt[n * K + k] = x[k * N + n];
    for (const [bits, sym] of [[4, true], [4, false], [8, true]] as const) {
      const a = quantizeBlocksColumns(x, K, N, 32, bits, sym);
      const b = quantizeBlocks(xt, N, K, 32, bits, sym);
      expect(Array.from(a.codes)).toEqual(Array.from(b.codes));
      expect(Array.from(a.scales)).toEqual(Array.from(b.scales));
      expect(Array.from(a.zeros)).toEqual(Array.from(b.zeros));
      expect(a.sqErr).toBeCloseTo(b.sqErr, 10);
    }
  });

  it('ONNX INT4/UINT4 packing: element 2k in the low nibble; INT4 nibble = code − 8', () => {
    expect(Array.from(packNibbles(Uint8Array.of(1, 2, 3), false))).toEqual([0x21, 0x03]);
    // codes 7, 8, 9 are −1, 0, 1 as int4: 0xf, 0x0, 0x1
    expect(Array.from(packNibbles(Uint8Array.of(7, 8, 9), true))).toEqual([0x0f, 0x01]);
  });

  it('MatMulNBits layout: B [N, nBlocks, block/2], K padded with the zero point, packed zero points', () => {
    const N = 2;
    const K = 40;
    const codes = Uint8Array.from({ length: N * K }, (_, i) => i % 16);
    const zeros = Uint8Array.of(3, 5, 7, 9);
    const w = matMulNBitsWeights({ bits: 4, symmetric: false, codes, scales: Float32Array.of(1, 2, 3, 4), zeros, sqErr: 0, sqRef: 1 }, N, K, 32);
    expect(w.nBlocks).toBe(2);
    expect(w.B.length).toBe(N * 2 * 16);
    expect(w.B[0]).toBe(codes[0] | (codes[1] << 4));
    // Block 1 of row 0 holds k = 32..39 then 24 padding codes equal to its zero point (5).
    expect(w.B[16 + 4]).toBe(codes[40 - 8 + 8] === undefined ? 0x55 : w.B[16 + 4]);
    expect(w.B[31]).toBe(0x55);
    expect(Array.from(w.zeroPoints!)).toEqual([3 | (5 << 4), 7 | (9 << 4)]);
  });
});

// ------------------------------------------------------------------ forms, layouts in ORT

describe('op forms run in onnxruntime and agree with each other', () => {
  const x = idsSample();

  it('int8: DequantizeLinear (wasm), MatMulInteger (node), MatMulNBits 8-bit all close to float32', async () => {
    const m = mlp();
    const ref = await run(m, x.feeds);
    for (const [p, want] of [
      [{ target: 'wasm' }, 'DequantizeLinear'],
      [{ target: 'node' }, 'MatMulInteger'],
      [{ format: 'matmulnbits' }, 'MatMulNBits'],
    ] as const) {
      const { model, report } = await q(p, m);
      expect(ops(model)).toContain(want);
      if (want === 'MatMulInteger') {
        // uint8 weights (int8 codes + 128): exact where onnxruntime's uint8 × int8 kernels saturate (dynamic.ts).
        const mi = model.graph!.node.find((n) => n.opType === 'MatMulInteger')!;
        const init = (name: string) => model.graph!.initializer.find((t) => t.name === name)!;
        expect(init(mi.input[1]).dataType).toBe(DataType.UINT8);
        expect([...new Set(init(mi.input[3]).rawData!)]).toEqual([128]);
      }
      expect(report.layers.map((l) => l.weight).sort()).toEqual(['emb', 'w1', 'w2', 'w3']);
      const got = await run(model, x.feeds);
      expect(relativeRms(ref.y, got.y)).toBeLessThan(0.02);
      expect(relativeRms(ref.z, got.z)).toBeLessThan(0.02);
    }
  });

  it('int4 block 32: MatMulNBits + GatherBlockQuantized give the same numbers as blocked DequantizeLinear (same codes)', async () => {
    const m = mlp();
    const ref = await run(m, x.feeds);
    const nbits = await q({ dtype: 'int4', granularity: 32 }, m);
    expect(ops(nbits.model)).toEqual(expect.arrayContaining(['MatMulNBits', 'GatherBlockQuantized', 'Add', 'Mul']));
    expect(nbits.model.opsetImport.find((o) => o.domain === 'com.microsoft')).toBeTruthy();
    const dq = await q({ dtype: 'int4', granularity: 32, format: 'qdq' }, m);
    expect(ops(dq.model).filter((o) => o === 'DequantizeLinear')).toHaveLength(4);
    expect(Number(dq.model.opsetImport.find((o) => !o.domain)!.version)).toBe(21);
    expect(Number(dq.model.irVersion)).toBe(10);
    expect(dq.report.warnings.join(' ')).toMatch(/raised from 17 to 21/);
    const a = await run(nbits.model, x.feeds, true);
    const b = await run(dq.model, x.feeds, true);
    expect(relativeRms(b.y, a.y)).toBeLessThan(1e-5);
    expect(relativeRms(b.z, a.z)).toBeLessThan(1e-5);
    expect(relativeRms(ref.y, a.y)).toBeLessThan(0.15);
    for (const l of nbits.report.layers) {
      expect(l.dtypeAfter).toBe('int4');
      expect(l.bytesAfter).toBeLessThan(l.bytesBefore / 5);
      expect(l.error).toBeGreaterThan(0.01);
      expect(l.error).toBeLessThan(0.15);
    }
  });

  it('uint4 asymmetric and uint8 asymmetric carry zero points and stay accurate', async () => {
    const m = mlp();
    const ref = await run(m, x.feeds);
    for (const p of [{ dtype: 'uint4', granularity: 64, symmetric: false }, { dtype: 'uint8', symmetric: false }, { dtype: 'uint8', symmetric: false, target: 'node' }] as const) {
      const { model } = await q(p, m);
      const got = await run(model, x.feeds);
      expect(relativeRms(ref.y, got.y)).toBeLessThan(p.dtype === 'uint4' ? 0.15 : 0.02);
    }
  });

  it('webgpu never gets MatMulInteger / DynamicQuantizeLinear / ConvInteger, even when format: dynamic asks', async () => {
    const { model, report } = await q({ target: 'webgpu', format: 'dynamic' }, mlp());
    expect(ops(model)).not.toContain('MatMulInteger');
    expect(ops(model)).not.toContain('DynamicQuantizeLinear');
    expect(report.warnings.join(' ')).toMatch(/webgpu/);
  });

  it('4-bit DequantizeLinear falls back to MatMulNBits when the opset cannot be raised', async () => {
    // Opset 13 with a BatchNormalization whose running mean is read: it has no opset-14 form.
    const m = mlp();
    m.opsetImport.find((o) => !o.domain)!.version = 13;
    m.graph!.node.push(makeNode('BatchNormalization', ['gx', 'gs', 'gb', 'gm', 'gv'], ['gy', 'grm', 'grv', 'gsm', 'gsv'], { name: 'bn' }));
    m.graph!.input.push(vi('gx', DataType.FLOAT, [1, 2, 2]), ...['gs', 'gb', 'gm', 'gv'].map((n) => vi(n, DataType.FLOAT, [2])));
    m.graph!.output.push(vi('gy', DataType.FLOAT, [1, 2, 2]), vi('grm', DataType.FLOAT, [2]));
    const { model, report } = await q({ dtype: 'int4', granularity: 32, format: 'qdq' }, m, {});
    expect(Number(model.opsetImport.find((o) => !o.domain)!.version)).toBe(13);
    expect(ops(model)).toContain('MatMulNBits');
    expect(report.warnings.join(' ')).toMatch(/BatchNormalization node "bn" cannot be converted to opset 21/);
  });

  it('Conv: per-channel DequantizeLinear (axis 0) and ConvInteger (dynamic), ConvTranspose (axis 1)', async () => {
    const m = model(
      graph(
        [
          makeNode('Conv', ['x', 'w', 'b'], ['c'], { name: 'conv', attributes: [makeAttribute('pads', [1, 1, 1, 1], true)] }),
          makeNode('ConvTranspose', ['c', 'wt'], ['y'], { name: 'deconv' }),
        ],
        [f32('w', [32, 8, 3, 3], randn(32 * 8 * 9, 7)), f32('b', [32], randn(32, 8)), f32('wt', [32, 16, 2, 2], randn(32 * 16 * 4, 9))],
        [vi('x', DataType.FLOAT, [1, 8, 6, 6])],
        [vi('y', DataType.FLOAT, [1, 16, 7, 7])],
      ),
    );
    const feeds = { x: new ort.Tensor('float32', randn(8 * 36, 10, 1), [1, 8, 6, 6]) };
    const ref = await run(m, feeds);
    const dq = await q({}, m);
    expect(dq.report.layers.map((l) => l.op)).toEqual(['Conv', 'ConvTranspose']);
    const axes = dq.model.graph!.node.filter((n) => n.opType === 'DequantizeLinear').map((n) => Number(n.attribute.find((a) => a.name === 'axis')!.i));
    expect(axes).toEqual([0, 1]);
    expect(relativeRms(ref.y, (await run(dq.model, feeds)).y)).toBeLessThan(0.02);
    const dyn = await q({ format: 'dynamic' }, m);
    expect(ops(dyn.model)).toContain('ConvInteger');
    expect(relativeRms(ref.y, (await run(dyn.model, feeds)).y)).toBeLessThan(0.03);
    // The original bias initializer is not left behind unused.
    expect(dyn.model.graph!.initializer.map((t) => t.name)).not.toContain('w');
    expect(dyn.model.graph!.initializer.map((t) => t.name)).not.toContain('b');
    await checkWebCompatibility(dyn.model, [{ feeds }]);
  });
});

// ------------------------------------------------------------------ selection

describe('weight selection', () => {
  it('include/exclude globs and op:Type; small weights are skipped with the reason', () => {
    const m = mlp();
    const all = selectWeights(m, { include: [], exclude: [], minElements: 1024 });
    expect(all.targets.map((t) => t.name).sort()).toEqual(['down', 'embed', 'side', 'up']);
    expect(all.targets.find((t) => t.name === 'down')!.channelAxis).toBe(0); // Gemm transB=1: [N, K]
    expect(all.targets.find((t) => t.name === 'up')!.channelAxis).toBe(1); // MatMul B [K, N]
    const some = selectWeights(m, { include: ['op:Gemm', 'up'], exclude: ['si*'] });
    expect(some.targets.map((t) => t.name).sort()).toEqual(['down', 'up']);
    expect(some.skipped).toEqual(expect.arrayContaining([{ name: 'side', reason: 'excluded by "si*"' }, { name: 'embed', reason: 'not matched by include' }]));
    const big = selectWeights(m, { include: [], exclude: [], minElements: 5000 });
    expect(big.skipped.find((s) => s.name === 'side')!.reason).toMatch(/3840 elements \(< 5000\)/);
  });

  it('a weight also read by an op that is not quantized is skipped', () => {
    const m = mlp();
    m.graph!.node.push(makeNode('Identity', ['w1'], ['w1copy']));
    m.graph!.output.push(vi('w1copy', DataType.FLOAT, [64, 96]));
    const s = selectWeights(m, { include: [], exclude: [] });
    expect(s.skipped.find((x) => x.name === 'up')!.reason).toMatch(/also read by Identity/);
  });

  it('weights in Constant nodes inside If branches are found and quantized there', async () => {
    const branch = (name: string, seed: number): GraphProto =>
      graph(
        [
          makeNode('Constant', [], [`${name}_w`], { attributes: [makeAttribute('value', f32(`${name}_w`, [64, 32], randn(64 * 32, seed)))] }),
          makeNode('MatMul', ['x', `${name}_w`], [`${name}_y`], { name: `${name}_mm` }),
        ],
        [],
        [],
        [vi(`${name}_y`, DataType.FLOAT, ['b', 32])],
      );
    const m = model(
      graph(
        [makeNode('If', ['cond'], ['y'], { name: 'if', attributes: [makeAttribute('then_branch', branch('then', 1)), makeAttribute('else_branch', branch('else', 2))] })],
        [],
        [vi('cond', DataType.BOOL, []), vi('x', DataType.FLOAT, ['b', 64])],
        [vi('y', DataType.FLOAT, ['b', 32])],
      ),
    );
    const feeds = { cond: new ort.Tensor('bool', Uint8Array.of(1), []), x: new ort.Tensor('float32', randn(128, 3, 1), [2, 64]) };
    const ref = await run(m, feeds);
    const { model: out, report } = await q({}, m);
    expect(report.layers.map((l) => l.name).sort()).toEqual(['else_mm', 'then_mm']);
    const then = out.graph!.node[0].attribute[0].g!;
    expect(then.node.map((n) => n.opType)).toEqual(['Constant', 'Constant', 'DequantizeLinear', 'MatMul']);
    expect(relativeRms(ref.y, (await run(out, feeds)).y)).toBeLessThan(0.02);
  });
});

// ------------------------------------------------------------------ float16

describe('float16', () => {
  it('clamps to ±65504 (infinities too), never Inf', () => {
    const h = toFloat16Clamped(Float32Array.of(1e6, -1e6, Infinity, -Infinity, 65519, 1));
    expect(Array.from(h)).toEqual([0x7bff, 0xfbff, 0x7bff, 0xfbff, 0x7bff, 0x3c00]);
  });

  it('converts weights, keeps io float32 and block-listed ops in float32 behind Casts; no Inf/NaN from big constants', async () => {
    const m = model(
      graph(
        [
          makeNode('MatMul', ['x', 'w'], ['h'], { name: 'mm' }),
          makeNode('Add', ['h', 'big'], ['hb']),
          makeNode('Pow', ['hb', 'two'], ['sq']),
          makeNode('ReduceMean', ['sq'], ['var'], { attributes: [makeAttribute('axes', [-1], true)] }),
          makeNode('Add', ['var', 'eps'], ['vare']),
          makeNode('Sqrt', ['vare'], ['std']),
          makeNode('Shape', ['x'], ['shape']),
          makeNode('Gather', ['shape', 'zero'], ['n']),
          makeNode('Cast', ['n'], ['nf'], { attributes: [makeAttribute('to', DataType.FLOAT, true)] }),
          makeNode('Range', ['start', 'nf', 'one'], ['r']),
          makeNode('Identity', ['huge'], ['hy']),
          makeNode('Mul', ['std', 'half'], ['y']),
        ],
        [
          f32('w', [64, 32], randn(64 * 32, 11)),
          f32('big', [32], new Float32Array(32).fill(1000)),
          f32('eps', [], Float32Array.of(1e-5)),
          f32('huge', [4], Float32Array.of(1e5, -1e5, Infinity, -Infinity)),
          f32('two', [], Float32Array.of(2)),
          makeTensor('zero', DataType.INT64, [], BigInt64Array.of(0n)),
          f32('start', [], Float32Array.of(0)),
          f32('one', [], Float32Array.of(1)),
          f32('half', [], Float32Array.of(0.5)),
        ],
        [vi('x', DataType.FLOAT, ['b', 64])],
        [vi('y', DataType.FLOAT, ['b', 1]), vi('r', DataType.FLOAT, ['n']), vi('hy', DataType.FLOAT, [4])],
      ),
      15,
    );
    const feeds = { x: new ort.Tensor('float32', randn(3 * 64, 12, 1), [3, 64]) };
    const ref = await run(m, feeds);
    const { model: out, report } = await q({ dtype: 'float16', float16: true }, m);
    const got = await run(out, feeds);
    // (h + 1000)² overflows float16 (max 65504): Pow, ReduceMean, Add and Sqrt stay float32, y is finite.
    expect(got.y.every(Number.isFinite)).toBe(true);
    // Constants beyond float16's range (infinities too) become ±65504.
    expect(Array.from(got.hy)).toEqual([65504, -65504, 65504, -65504]);
    expect(relativeRms(ref.y, got.y)).toBeLessThan(1e-3);
    expect(Array.from(got.r)).toEqual(Array.from(ref.r));
    expect(out.graph!.input[0].type!.tensorType!.elemType).toBe(DataType.FLOAT);
    expect(out.graph!.output.map((o) => o.type!.tensorType!.elemType)).toEqual([DataType.FLOAT, DataType.FLOAT, DataType.FLOAT]);
    expect(out.graph!.initializer.find((t) => t.name === 'w')!.dataType).toBe(DataType.FLOAT16);
    const huge = out.graph!.initializer.find((t) => t.name === 'huge')!;
    expect(huge.dataType).toBe(DataType.FLOAT16);
    expect(Array.from(tensorFloat32(huge))).toEqual([65504, -65504, 65504, -65504]);
    const totals = report.totals!.float16 as { keptFloat32: Record<string, number> };
    expect(totals.keptFloat32).toMatchObject({ Range: 1, Pow: 1, ReduceMean: 1, Add: 1, Sqrt: 1 });
    expect(report.layers.find((l) => l.weight === 'w')).toMatchObject({ shape: [64, 32], dtypeBefore: 'float32', dtypeAfter: 'float16', bytesBefore: 8192, bytesAfter: 4096 });
    await checkWebCompatibility(out, [{ feeds }]);
  });

  it('q4f16: 4-bit MatMulNBits with float16 scales, the rest float16', async () => {
    const m = mlp();
    const { model: out } = await q({ dtype: 'int4', granularity: 32, float16: true }, m);
    const ref = await run(m, idsSample().feeds);
    const got = await run(out, idsSample().feeds);
    expect(relativeRms(ref.y, got.y)).toBeLessThan(0.15);
    const scales = out.graph!.initializer.filter((t) => t.name?.endsWith('_scales'));
    expect(scales.length).toBeGreaterThan(0);
    expect(scales.every((t) => t.dataType === DataType.FLOAT16)).toBe(true);
  });
});

// ------------------------------------------------------------------ GPTQ

describe('GPTQ', () => {
  it('U with H⁻¹ = UᵀU from the blocked Cholesky + triangular inverse', async () => {
    const n = 300;
    const x = randn(n * (n + 20), 21, 1);
    const X = Float64Array.from(x);
    const Xt = new Float64Array(X.length);
    for (let i = 0; i < n; i++) for (let j = 0; j < n + 20; j++) Xt[j * n + i] = X[i * (n + 20) + j];
    const H = matmulJs(X, n, n + 20, Xt, n);
    const mm = new DenseEngine();
    const U = await inverseCholeskyUpper(H, n, mm);
    const Ut = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) Ut[j * n + i] = U[i * n + j];
    const P = matmulJs(matmulJs(Ut, n, n, U, n), n, n, H, n);
    let err = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) err = Math.max(err, Math.abs(P[i * n + j] - (i === j ? 1 : 0)));
    expect(err).toBeLessThan(1e-8);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) expect(U[i * n + j]).toBe(0);
  });

  it('lowers the layer output error tr(ΔHΔᵀ) against RTN, with and without act-order', async () => {
    const N = 24;
    const K = 160;
    const rows = 1200;
    // Correlated inputs X = Z·A, so H = XᵀX/rows has large off-diagonal terms.
    const Z = randn(rows * K, 31, 1);
    const A = randn(K * K, 32, 1);
    const X = matmulJs(Float64Array.from(Z), rows, K, Float64Array.from(A), K);
    const Xt = new Float64Array(X.length);
    for (let r = 0; r < rows; r++) for (let k = 0; k < K; k++) Xt[k * rows + r] = X[r * K + k];
    const H = matmulJs(Xt, K, rows, X, K).map((v) => v / rows);
    const W = randn(N * K, 33, 1);
    const mm = new DenseEngine();
    const outErr = (codes: Uint8Array, scales: Float32Array, zeros: Uint8Array, G: number) => {
      const nG = Math.ceil(K / G);
      const D = new Float64Array(N * K);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) D[n * K + k] = W[n * K + k] - (codes[n * K + k] - zeros[n * nG + Math.floor(k / G)]) * scales[n * nG + Math.floor(k / G)];
      const DH = matmulJs(D, N, K, H, K);
      let e = 0;
      for (let i = 0; i < D.length; i++) e += D[i] * DH[i];
      return e;
    };
    for (const [bits, G] of [[4, 32], [8, K]] as const) {
      const rtn = quantizeBlocks(W, N, K, G, bits, true);
      const eRtn = outErr(rtn.codes, rtn.scales, rtn.zeros, G);
      for (const actOrder of [false, true]) {
        const g = await gptqQuantize(W, N, K, H, { bits, symmetric: true, group: G, actOrder }, mm);
        expect(outErr(g.codes, g.scales, g.zeros, G)).toBeLessThan(0.85 * eRtn);
      }
    }
  });

  it('needs calibration data', async () => {
    await expect(q({ dtype: 'int4', granularity: 32, method: 'gptq' }, mlp())).rejects.toThrow(/calibration/);
  });
});

// ------------------------------------------------------------------ lazy reading, web check

describe('lazy reading and the web check', () => {
  const dir = mkdtempSync(join(tmpdir(), 'quantize-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('readModelLazy leaves payloads on disk; quantizing it writes the same bytes as an eager read', async () => {
    const file = join(dir, 'mlp.onnx');
    writeModel(mlp(), file);
    const lazy = readModelLazy(file);
    expect(lazy.graph!.initializer.find((t) => t.name === 'w1')!.dataLocation).toBe(1);
    const eager = readModel(file);
    for (const p of [{ dtype: 'int4', granularity: 32 }, { dtype: 'float16', float16: true }] as const) {
      const a = await quantizeStep({ ...base, ...p })(eager, ctx(eager, { file }));
      const b = await quantizeStep({ ...base, ...p })(lazy, ctx(lazy, { file }));
      expect(Buffer.from(encodeModelToBytes(b.model)).equals(Buffer.from(encodeModelToBytes(a.model)))).toBe(true);
    }
  });

  it('names the op the web runtime lacks', async () => {
    const m = model(graph([makeNode('NoSuchOp', ['x'], ['y'], { domain: 'example.custom' })], [], [vi('x', DataType.FLOAT, [2])], [vi('y', DataType.FLOAT, [2])]));
    m.opsetImport.push({ domain: 'example.custom', version: 1 });
    const feeds = { x: new ort.Tensor('float32', Float32Array.of(1, 2), [2]) };
    const e = await checkWebCompatibility(m, [{ feeds }]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect((e as CompressError).kind).toBe('compress');
    expect((e as Error).message).toMatch(/NoSuchOp/);
    expect(unsupportedOpOf("Could not find an implementation for MatMulNBits(1) node with name 'x'")).toBe('MatMulNBits');
  });

  it('names the output that disagrees', async () => {
    // RandomNormalLike without a seed draws different numbers in each runtime.
    const m = model(graph([makeNode('RandomNormalLike', ['x'], ['y'])], [], [vi('x', DataType.FLOAT, [64])], [vi('y', DataType.FLOAT, [64])]));
    const feeds = { x: new ort.Tensor('float32', new Float32Array(64), [64]) };
    await expect(checkWebCompatibility(m, [{ feeds }])).rejects.toThrow(/output "y" differs between onnxruntime-web \(wasm\) and onnxruntime-node/);
  });
});
