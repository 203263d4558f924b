/**
 * Static int8 between the layers: the integer ops (Add, Mul, Concat, LeakyRelu, Sigmoid, AveragePool,
 * GlobalAveragePool), folded clamps (Relu, Max with a constant), moves, the int32 bias of a dead channel
 * and the activation guard, on small seeded networks. What counts is what onnxruntime makes of the
 * written graph: its optimized graph (SessionOptions.optimizedModelFilePath) is read back and must hold
 * the QLinear kernels and no float op of those kinds, and the outputs must stay close to float32 on
 * inputs the calibration never saw.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { optimizedOps } from './ort-graph.js';
import type { Sample } from '../src/data/types.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto, TensorProto } from '../src/onnx/types.js';
import { seededRandom } from '../src/random.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import type { QuantizeStep } from '../src/recipe/types.js';
import { openSession } from '../src/runtime/session.js';
import { compareWebOutputs } from '../src/runtime/web-compat.js';
import { clampParams } from '../src/transforms/quantize/calibrate.js';
import { checkWebCompatibility, quantizeStep } from '../src/transforms/quantize/index.js';
import type { StepReport } from '../src/transforms/types.js';

const tmp = mkdtempSync(join(tmpdir(), 'static-ops-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const rand = seededRandom(7);
const gauss = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
const tensor = (name: string, dims: number[], f: (i: number) => number): TensorProto => makeTensor(name, DataType.FLOAT, dims, Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => f(i)));
const conv = (name: string, cout: number, cin: number, k: number) => [tensor(`${name}.w`, [cout, cin, k, k], () => gauss() / Math.sqrt(cin * k * k)), tensor(`${name}.b`, [cout], () => 0.1 * gauss())];
const attrs = (a: Record<string, number | number[]>) => Object.entries(a).map(([k, v]) => makeAttribute(k, v, Number.isInteger(v) || Array.isArray(v)));

/**
 * x [1,8,16,16] → Conv → Relu → Conv → Add(residual) → two 1×1 Convs → Concat → LeakyRelu → Max(−0.5)
 * → Conv → x·Sigmoid(x) → ·0.5 → AveragePool → Conv → GlobalAveragePool → Flatten → Gemm → y [1,10].
 */
function residualNet(): ModelProto {
  const inits = [...conv('c1', 16, 8, 3), ...conv('c2', 16, 16, 3), ...conv('c3', 16, 16, 1), ...conv('c4', 16, 16, 1), ...conv('c5', 32, 32, 1), ...conv('c6', 32, 32, 3)];
  inits.push(tensor('fc.w', [10, 32], () => gauss() / Math.sqrt(32)), tensor('fc.b', [10], () => 0.1 * gauss()), tensor('floor', [], () => -0.5), tensor('half', [], () => 0.5));
  const pad1 = { pads: [1, 1, 1, 1] };
  const nodes = [
    makeNode('Conv', ['x', 'c1.w', 'c1.b'], ['c1'], { name: 'conv1', attributes: attrs(pad1) }),
    makeNode('Relu', ['c1'], ['r1'], { name: 'relu1' }),
    makeNode('Conv', ['r1', 'c2.w', 'c2.b'], ['c2'], { name: 'conv2', attributes: attrs(pad1) }),
    makeNode('Add', ['c2', 'r1'], ['res'], { name: 'residual' }),
    makeNode('Conv', ['res', 'c3.w', 'c3.b'], ['c3'], { name: 'conv3' }),
    makeNode('Conv', ['res', 'c4.w', 'c4.b'], ['c4'], { name: 'conv4' }),
    makeNode('Concat', ['c3', 'c4'], ['cat'], { name: 'concat', attributes: attrs({ axis: 1 }) }),
    makeNode('LeakyRelu', ['cat'], ['lk'], { name: 'leaky', attributes: [makeAttribute('alpha', 0.1)] }),
    makeNode('Max', ['lk', 'floor'], ['mx'], { name: 'floor' }),
    makeNode('Conv', ['mx', 'c5.w', 'c5.b'], ['c5'], { name: 'conv5' }),
    makeNode('Sigmoid', ['c5'], ['sg'], { name: 'sigmoid' }),
    makeNode('Mul', ['c5', 'sg'], ['sw'], { name: 'swish' }),
    makeNode('Mul', ['sw', 'half'], ['hs'], { name: 'halve' }),
    makeNode('AveragePool', ['hs'], ['ap'], { name: 'pool', attributes: attrs({ kernel_shape: [2, 2], strides: [2, 2] }) }),
    makeNode('Conv', ['ap', 'c6.w', 'c6.b'], ['c6'], { name: 'conv6', attributes: attrs(pad1) }),
    makeNode('GlobalAveragePool', ['c6'], ['gp'], { name: 'gap' }),
    makeNode('Flatten', ['gp'], ['fl'], { name: 'flatten' }),
    makeNode('Gemm', ['fl', 'fc.w', 'fc.b'], ['y'], { name: 'fc', attributes: attrs({ transB: 1 }) }),
  ];
  return makeModel(makeGraph('residual', nodes, [makeValueInfo('x', DataType.FLOAT, [1, 8, 16, 16])], [makeValueInfo('y', DataType.FLOAT, [1, 10])], inits), 13);
}

function inputs(n: number, seed: number, dims: number[], name = 'x'): Sample[] {
  const r = seededRandom(seed);
  const size = dims.reduce((a, b) => a * b, 1);
  return Array.from({ length: n }, () => ({ feeds: { [name]: new ort.Tensor('float32', Float32Array.from({ length: size }, () => 2 * r() - 1 + 0.3 * Math.sin(r() * 6)), dims) } }));
}

async function quantize(model: ModelProto, calibration: Sample[], params: Partial<QuantizeStep>): Promise<{ model: ModelProto; report: StepReport }> {
  return quantizeStep({ ...quantizeDefaults('int8'), ...params }, { intraOpThreads: 2 })(model, { file: join(tmp, 'model.onnx'), original: model, calibration, device: 'cpu', seed: 0, log: () => {} });
}

/**
 * The model's outputs as the pipeline measures them (openSession): onnxruntime's kernels, except where
 * its 8-bit ones saturate (x86 without VNNI), where QDQ groups run unfused (runtime/integer-kernels.ts).
 */
async function outputs(model: ModelProto, samples: Sample[]): Promise<Float32Array[]> {
  const { session: s } = await openSession(model);
  const out: Float32Array[] = [];
  for (const x of samples) out.push(((await s.run(x.feeds as Record<string, ort.Tensor>))[s.outputNames[0]].data as Float32Array).slice());
  await s.release();
  return out;
}

function cosine(a: Float32Array[], b: Float32Array[]): number {
  let d = 0;
  let x = 0;
  let y = 0;
  a.forEach((u, i) => u.forEach((v, k) => ((d += v * b[i][k]), (x += v * v), (y += b[i][k] * b[i][k]))));
  return d / Math.sqrt(x * y);
}

describe('static int8: integer ops between the layers', () => {
  const model = residualNet();
  const calibration = inputs(32, 1, [1, 8, 16, 16]);
  const heldOut = inputs(32, 2, [1, 8, 16, 16]);

  it('onnxruntime runs Add, Concat, LeakyRelu (Max folded), Sigmoid, Mul, AveragePool and GlobalAveragePool as QLinear kernels; outputs stay close; same in onnxruntime-web', async () => {
    const { model: q, report } = await quantize(model, calibration, { activations: 'uint8', activationCosine: 0 });
    const ops = await optimizedOps(q, join(tmp, 'residual.optimized.onnx'));
    console.log('residual static uint8 optimized:', JSON.stringify(ops), 'totals:', JSON.stringify(report.totals!.static));
    for (const op of ['QLinearConv', 'QLinearAdd', 'QLinearConcat', 'QLinearLeakyRelu', 'QLinearSigmoid', 'QLinearMul', 'QLinearAveragePool', 'QLinearGlobalAveragePool', 'QGemm']) expect(ops[op], op).toBeGreaterThan(0);
    expect(ops.QLinearMul).toBe(2); // x·sigmoid(x), and ·0.5 with the constant quantized
    for (const op of ['Conv', 'FusedConv', 'Add', 'Concat', 'LeakyRelu', 'Max', 'Sigmoid', 'Mul', 'AveragePool', 'GlobalAveragePool', 'Gemm', 'FusedGemm']) expect(ops[op], op).toBeUndefined();
    // One QuantizeLinear at the input and nothing dequantized before the classifier: integers throughout.
    expect(ops.QuantizeLinear).toBe(1);
    const st = report.totals!.static as { integerOps: Record<string, number>; foldedRelu: number };
    expect(st.integerOps).toEqual({ Add: 1, Concat: 1, LeakyRelu: 1, Sigmoid: 1, Mul: 2, AveragePool: 1, GlobalAveragePool: 1 });
    expect(st.foldedRelu).toBe(2); // the Relu after conv1, the Max(−0.5) after the LeakyRelu
    const cos = cosine(await outputs(model, heldOut), await outputs(q, heldOut));
    console.log(`residual static uint8: held-out cosine ${cos.toFixed(5)}`);
    expect(cos).toBeGreaterThan(0.99);
    const web = await checkWebCompatibility(q, heldOut.slice(0, 4), {});
    expect(web.outputs[0].maxAbsDiff).toBeLessThanOrEqual(web.outputs[0].allowed);
  });

  it('int8 activations: constants stay float, so ·0.5 stays float, and x·sigmoid(x) before it (nothing reads it as integers) too; still close', async () => {
    const { model: q, report } = await quantize(model, calibration, { activations: 'int8', activationCosine: 0 });
    const st = report.totals!.static as { integerOps: Record<string, number> };
    expect(st.integerOps).toEqual({ Add: 1, Concat: 1, LeakyRelu: 1, GlobalAveragePool: 1 });
    const cos = cosine(await outputs(model, heldOut), await outputs(q, heldOut));
    expect(cos).toBeGreaterThan(0.99);
  });

  it('a folded Max(x, c) saturates exactly at c: the lowest code dequantizes to it', () => {
    for (const [lo, hi] of [[-0.5, 3.7], [-0.4, 20], [-2, 0.1], [0, 6]] as const) {
      for (const type of ['uint8', 'int8'] as const) {
        const p = clampParams(lo, hi, type);
        const qmin = type === 'uint8' ? 0 : -128;
        expect(Math.abs((qmin - p.zero) * p.scale - lo), `${lo} ${type}`).toBeLessThan(1e-6 * Math.max(1, -lo));
        expect((qmin + 255 - p.zero) * p.scale, `${hi} fits`).toBeGreaterThanOrEqual(hi * (1 - 1e-6));
      }
    }
  });
});

describe('static int8: a chain of moves between an integer op and a layer', () => {
  it('x·sigmoid(x) → Squeeze → Transpose → MatMul stays integer to the MatMul (the MatMul\'s input was planned before the moves that make it)', async () => {
    // x [1,8,1,16] → Conv 1×1 → swish → Squeeze(axis 2) → Transpose → MatMul [16 → 8]: PP-OCRv4 rec's neck.
    const inits = [...conv('c', 8, 8, 1), tensor('w', [8, 12], () => gauss() / Math.sqrt(8)), makeTensor('axes', DataType.INT64, [1], BigInt64Array.of(2n))];
    const nodes = [
      makeNode('Conv', ['x', 'c.w', 'c.b'], ['c'], { name: 'conv' }),
      makeNode('Sigmoid', ['c'], ['s'], { name: 'sigmoid' }),
      makeNode('Mul', ['c', 's'], ['sw'], { name: 'swish' }),
      makeNode('Squeeze', ['sw', 'axes'], ['sq'], { name: 'squeeze' }),
      makeNode('Transpose', ['sq'], ['t'], { name: 'transpose', attributes: attrs({ perm: [0, 2, 1] }) }),
      makeNode('MatMul', ['t', 'w'], ['y'], { name: 'matmul' }),
    ];
    const model = makeModel(makeGraph('neck', nodes, [makeValueInfo('x', DataType.FLOAT, [1, 8, 1, 16])], [makeValueInfo('y', DataType.FLOAT, [1, 16, 12])], inits), 13);
    const { model: q, report } = await quantize(model, inputs(16, 4, [1, 8, 1, 16]), { activations: 'uint8', activationCosine: 0 });
    const st = report.totals!.static as { integerOps: Record<string, number>; movedOps: string[] };
    expect(st.integerOps).toEqual({ Sigmoid: 1, Mul: 1 });
    expect([...st.movedOps].sort()).toEqual(['Squeeze', 'Transpose']);
    const ops = await optimizedOps(q, join(tmp, 'neck.optimized.onnx'));
    for (const op of ['QLinearConv', 'QLinearSigmoid', 'QLinearMul']) expect(ops[op], op).toBe(1);
    expect(ops.QLinearMatMul ?? ops.MatMulIntegerToFloat).toBe(1);
    const held = inputs(8, 5, [1, 8, 1, 16]);
    expect(cosine(await outputs(model, held), await outputs(q, held))).toBeGreaterThan(0.99);
  });
});

describe('static int8: a dead channel keeps its bias', () => {
  it('a channel with weights ~0 and bias 2.5 outputs 2.5, not a bias clamped to int32', async () => {
    // x [1,1,4,4] → Conv (2 channels: weights 1e-9 / 1, biases 2.5 / 0) → y.
    const w = makeTensor('w', DataType.FLOAT, [2, 1, 1, 1], Float32Array.of(1e-9, 1));
    const b = makeTensor('b', DataType.FLOAT, [2], Float32Array.of(2.5, 0));
    const model = makeModel(makeGraph('dead', [makeNode('Conv', ['x', 'w', 'b'], ['y'], { name: 'conv' })], [makeValueInfo('x', DataType.FLOAT, [1, 1, 4, 4])], [makeValueInfo('y', DataType.FLOAT, [1, 2, 4, 4])], [w, b]), 13);
    const calibration = inputs(8, 3, [1, 1, 4, 4]);
    const { model: q, report } = await quantize(model, calibration, { activations: 'uint8', activationCosine: 0 });
    expect((report.totals!.static as { widenedChannels?: number }).widenedChannels).toBe(1);
    expect(report.warnings.join('\n')).not.toMatch(/clamped/);
    const [y] = await outputs(q, calibration.slice(0, 1));
    const scale = 3.5 / 255; // the output's range: about [−1, 2.5]
    for (let i = 0; i < 16; i++) expect(Math.abs(y[i] - 2.5)).toBeLessThanOrEqual(scale);
  });
});

describe('web check of a static build: one 8-bit step apart', () => {
  const f32 = (a: number[]) => ({ type: 'float32', dims: [a.length], data: Float32Array.from(a) });
  const id = (u: Uint16Array) => Float32Array.from(u);
  // node and web agree but for one value a step apart; the model's own error against float32 is larger.
  const node = f32([0.1, 0.5, 0.9, 0.2, 0.0, 0.7, 0.3, 0.8]);
  const web = f32([0.1, 0.5, 0.9, 0.2, 0.0, 0.7, 0.3, 0.6]);
  const float = f32([0.2, 0.4, 0.98, 0.11, 0.1, 0.62, 0.39, 0.7]);
  it('element-wise it differs; against the float32 outputs its RMS is within the model\'s own 8-bit error', () => {
    const plain = compareWebOutputs({ y: node }, { y: web }, 1e-3, 1e-4, id);
    expect(plain.problem).toMatch(/differs/);
    const c = compareWebOutputs({ y: node }, { y: web }, 1e-3, 1e-4, id, { y: float });
    expect(c.problem).toBeUndefined();
    expect(c.outputs[0].rms!.web).toBeCloseTo(Math.sqrt(0.04 / 8), 6);
    expect(c.outputs[0].rms!.web).toBeLessThanOrEqual(c.outputs[0].rms!.quantization);
  });
  it('a web output further from node than the model is from float32 still fails', () => {
    const bad = f32([0.9, 0.1, 0.2, 0.8, 0.5, 0.1, 0.9, 0.0]);
    const c = compareWebOutputs({ y: node }, { y: bad }, 1e-3, 1e-4, id, { y: float });
    expect(c.problem).toMatch(/exceeds .* own 8-bit error/);
  });
});
