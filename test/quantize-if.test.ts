/**
 * 8-bit weights read inside If branches from the outer scope. onnxruntime refuses a DequantizeLinear in a
 * branch whose codes are outer-scope initializers ("TransposeDQWeightsForMatMulNBits Missing required
 * weight"): the quantizer moves the codes into the one branch that reads them, or dequantizes once in the
 * outer graph when several graphs read the weight. Each form must load in onnxruntime (with its default
 * optimizations, which try that fusion) and match float32 within int8 rounding, for both branches.
 */
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { DataType } from '../src/onnx/dtypes.js';
import { relativeRms } from '../src/eval/metrics.js';
import { runModel } from './ort-graph.js';
import { makeAttribute, makeNode } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../src/onnx/types.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { quantizeStep } from '../src/transforms/quantize/index.js';

function randn(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const r = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
  return Float32Array.from({ length: n }, () => (r() + r() + r()) * 0.1);
}

const vi = (name: string, elemType: number, dims: (number | string)[]): ValueInfoProto => ({
  name,
  type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  metadataProps: [],
});
const graph = (node: NodeProto[], initializer: TensorProto[], input: ValueInfoProto[], output: ValueInfoProto[]): GraphProto => ({
  node,
  name: 'g',
  initializer,
  input,
  output,
  valueInfo: [],
  quantizationAnnotation: [],
  sparseInitializer: [],
  metadataProps: [],
});
const K = 64;
const N = 96;
/** A branch: y = act(x · weight). */
const branch = (name: string, weight: string, act: string) =>
  graph([makeNode('MatMul', ['x', weight], [`${name}_h`], { name: `${name}_mm` }), makeNode(act, [`${name}_h`], [`${name}_y`])], [], [], [vi(`${name}_y`, DataType.FLOAT, ['b', N])]);

/** If(cond) with outer-scope initializers W (and V); `outerReader` adds a MatMul on W in the outer graph too. */
function ifModel(thenWeight: string, elseWeight: string, outerReader = false): ModelProto {
  const nodes = [makeNode('If', ['cond'], ['y'], { name: 'if', attributes: [makeAttribute('then_branch', branch('then', thenWeight, 'Relu')), makeAttribute('else_branch', branch('else', elseWeight, 'Identity'))] })];
  const outputs = [vi('y', DataType.FLOAT, ['b', N])];
  if (outerReader) {
    nodes.push(makeNode('MatMul', ['x', 'W'], ['z'], { name: 'outer_mm' }));
    outputs.push(vi('z', DataType.FLOAT, ['b', N]));
  }
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
    graph: graph(nodes, [makeTensor('W', DataType.FLOAT, [K, N], randn(K * N, 1)), makeTensor('V', DataType.FLOAT, [K, N], randn(K * N, 2))], [vi('cond', DataType.BOOL, []), vi('x', DataType.FLOAT, ['b', K])], outputs),
  };
}

// Default session options: the optimizer tries the DequantizeLinear → MatMulNBits fusion that failed.
const run = (m: ModelProto, feeds: Record<string, ort.Tensor>) => runModel(m, feeds);

const CASES: [string, () => ModelProto, string][] = [
  ['both branches read the outer weight W', () => ifModel('W', 'W'), 'dequantized once in the outer graph'],
  ['each branch reads its own outer weight (W, V)', () => ifModel('W', 'V'), 'codes moved into the branch'],
  ['the outer graph and a branch read W', () => ifModel('W', 'V', true), 'dequantized once in the outer graph'],
];

describe('8-bit weights read inside If branches from the outer scope', () => {
  for (const dtype of ['int8', 'uint8'] as const) {
    for (const [what, make, form] of CASES) {
      it(`${dtype}: ${what}: loads in onnxruntime and matches float32 on both branches (${form})`, async () => {
        const m = make();
        const { model: out, report } = await quantizeStep(quantizeDefaults(dtype))(m, { file: 'if.onnx', original: m, device: 'cpu', seed: 0, log: () => {} });
        expect(report.layers.length).toBeGreaterThan(0);
        const outer = out.graph!;
        const then = outer.node.find((n) => n.opType === 'If')!.attribute.find((a) => a.name === 'then_branch')!.g!;
        // Where the codes went: in the branch when it alone reads them, else one DequantizeLinear outside.
        if (form === 'codes moved into the branch') {
          expect(then.initializer.map((t) => t.dataType)).toContain(dtype === 'int8' ? DataType.INT8 : DataType.UINT8);
          expect(then.node.map((n) => n.opType)).toEqual(['DequantizeLinear', 'MatMul', 'Relu']);
        } else {
          expect(outer.node.filter((n) => n.opType === 'DequantizeLinear').length).toBeGreaterThanOrEqual(1);
          expect(then.node.map((n) => n.opType)).toEqual(['MatMul', 'Relu']);
        }
        for (const cond of [1, 0]) {
          const feeds = { cond: new ort.Tensor('bool', Uint8Array.of(cond), []), x: new ort.Tensor('float32', randn(3 * K, 9 + cond), [3, K]) };
          const ref = await run(m, feeds);
          const got = await run(out, feeds);
          for (const k of Object.keys(ref)) expect(relativeRms(ref[k], got[k]), `${k}, cond ${cond}`).toBeLessThan(0.02);
        }
      });
    }
  }
});
