/**
 * Writes a static plan (static.ts) into the graph with GraphEdits, after the weights' DequantizeLinear
 * nodes have been emitted (dq.ts, with explicit zero points: the fused ops take them as inputs).
 *
 *   value x (per tensor):  x_scale float [], x_zero_point uint8/int8 [] (shared by its Q and every DQ)
 *   bias (Conv, Gemm):     int32 [C] = round(b / (x_scale · w_scale[c])), its scale [C], zero point 0,
 *                          DequantizeLinear axis 0 — what QLinearConv / QGemm take as their bias
 */
import { DataType } from '../../onnx/dtypes.js';
import { makeAttribute, makeNode } from '../../onnx/graph.js';
import { makeTensor, tensorFloat32 } from '../../onnx/tensor.js';
import type { NodeProto } from '../../onnx/types.js';
import type { ActivationParams } from './calibrate.js';
import type { GraphEdits } from './edits.js';
import type { Target } from './select.js';
import type { QuantizedValue, StaticPlan } from './static.js';

const INT32_MAX = 2 ** 31 - 1;

export interface StaticEmitStats {
  /** QuantizeLinear / DequantizeLinear nodes written for activations and biases. */
  quantizeNodes: number;
  dequantizeNodes: number;
  /** Relu nodes folded into a QuantizeLinear; move ops running on 8-bit values. */
  foldedRelu: number;
  movedOps: string[];
  /** Bias values clamped to the int32 range (a weight scale near 0). */
  clampedBias: number;
}

/**
 * Rewrites the main graph. `weightScales(t)`: the per-channel (or one per-tensor) scales its weight was
 * quantized with, for the bias scales.
 */
export function emitStatic(plan: StaticPlan, edits: GraphEdits, weightScales: (t: Target) => Float32Array): StaticEmitStats {
  const g = plan.graph;
  const idx = plan.index;
  const names = edits.names;
  const stats: StaticEmitStats = { quantizeNodes: 0, dequantizeNodes: 0, foldedRelu: 0, movedOps: [], clampedBias: 0 };
  const codeType = plan.activations === 'uint8' ? DataType.UINT8 : DataType.INT8;
  const init = (base: string, dt: number, dims: number[], data: Float32Array | Uint8Array | Int8Array | Int32Array): string => {
    const name = names.unique(base);
    g.initializer.push(makeTensor(name, dt, dims, data));
    return name;
  };
  const qParams = new Map<QuantizedValue['params'], [string, string]>();
  const paramsOf = (v: QuantizedValue): [string, string] => {
    const p = v.params!;
    let pair = qParams.get(p);
    if (!pair) {
      const zp = p.type === 'uint8' ? Uint8Array.of(p.zero) : Int8Array.of(p.zero);
      pair = [init(`${v.name}_scale`, DataType.FLOAT, [], Float32Array.of(p.scale)), init(`${v.name}_zero_point`, codeType, [], zp)];
      qParams.set(p, pair);
    }
    return pair;
  };
  const qName = new Map<QuantizedValue, string>();
  for (const v of plan.values.values()) qName.set(v, names.unique(`${v.name}_quantized`));
  const Q = (v: QuantizedValue, input: string): NodeProto => {
    stats.quantizeNodes++;
    return makeNode('QuantizeLinear', [input, ...paramsOf(v)], [qName.get(v)!], { name: names.unique(`${v.name}_QuantizeLinear`) });
  };
  const DQ = (v: QuantizedValue, output: string): NodeProto => {
    stats.dequantizeNodes++;
    return makeNode('DequantizeLinear', [qName.get(v)!, ...paramsOf(v)], [output], { name: names.unique(`${v.name}_DequantizeLinear`) });
  };

  // Which readers take the integers: anchors at input 0 (through their own DQ) and move ops.
  const moveFrom = new Map<NodeProto, QuantizedValue>();
  for (const v of plan.values.values()) if (v.source === 'move') moveFrom.set(v.producer!, v.from!);
  const readsQuantized = (n: NodeProto, v: QuantizedValue) => (plan.anchors.has(n) && n.input[0] === v.name) || moveFrom.get(n) === v;
  const needsFloat = (v: QuantizedValue) => idx.isGraphOutput(v.name) || idx.consumersOf(v.name).some((n) => !readsQuantized(n, v));

  // Quantize each value where it is made (nodes after a producer are collected: one node may make several).
  const atStart: NodeProto[] = [];
  const after = new Map<NodeProto, NodeProto[]>();
  const follow = (p: NodeProto, nodes: NodeProto[]) => after.set(p, [...(after.get(p) ?? []), ...nodes]);
  for (const v of plan.values.values()) {
    const p = v.producer;
    switch (v.source) {
      case 'input':
        atStart.push(Q(v, v.name));
        break;
      case 'float':
        follow(p!, [Q(v, v.name)]);
        break;
      case 'anchor': {
        // The anchor's output feeds its QuantizeLinear alone; float readers get a DequantizeLinear.
        let out = p!.output[0];
        if (v.folded) {
          edits.replace(g, v.folded, []);
          stats.foldedRelu++;
        } else p!.output[0] = out = names.unique(`${v.name}_float`);
        follow(p!, [Q(v, out), ...(needsFloat(v) ? [DQ(v, v.name)] : [])]);
        break;
      }
      case 'move':
        stats.movedOps.push(p!.opType!);
        follow(p!, needsFloat(v) ? [DQ(v, v.name)] : []);
        break;
    }
  }
  // Move ops read and write the integers (renamed after needsFloat has looked at the original names).
  for (const v of plan.values.values()) {
    if (v.source !== 'move') continue;
    v.producer!.input[0] = qName.get(v.from!)!;
    v.producer!.output[0] = qName.get(v)!;
  }
  for (const [p, nodes] of after) edits.replace(g, p, [p, ...nodes]);
  if (atStart.length && g.node.length) edits.insertBefore(g, g.node[0], atStart);

  // Each anchor reads its input through its own DequantizeLinear, and its bias as int32.
  for (const a of plan.anchors.values()) {
    const n = a.node;
    const v = plan.values.get(n.input[0])!;
    const x = names.unique(`${v.name}_dequantized`);
    const before = [DQ(v, x)];
    n.input[0] = x;
    const bias = a.kind !== 'matmul' ? n.input[2] : undefined;
    if (bias) before.push(quantizeBias(a.target, bias, v.params!, weightScales(a.target), n, plan, edits, stats));
    edits.insertBefore(g, n, before);
  }
  return stats;
}

function quantizeBias(t: Target, bias: string, x: ActivationParams, ws: Float32Array, node: NodeProto, plan: StaticPlan, edits: GraphEdits, stats: StaticEmitStats): NodeProto {
  const site = plan.index.weight(bias)!;
  const b = tensorFloat32(site.tensor);
  const C = b.length;
  const scales = new Float32Array(C);
  const q = new Int32Array(C);
  for (let c = 0; c < C; c++) {
    const s = Math.fround(x.scale * ws[ws.length === 1 ? 0 : c]);
    scales[c] = s;
    const v = Math.round(b[c] / s);
    if (Math.abs(v) > INT32_MAX) stats.clampedBias++;
    q[c] = Math.max(-INT32_MAX, Math.min(INT32_MAX, v));
  }
  const names = edits.names;
  const base = `${t.name}_bias`;
  const qn = edits.addTensor(site, `${bias}_quantized`, makeTensor('', DataType.INT32, [C], q));
  const sn = edits.addTensor(site, `${bias}_scale`, makeTensor('', DataType.FLOAT, [C], scales));
  const zn = edits.addTensor(site, `${bias}_zero_point`, makeTensor('', DataType.INT32, [C], new Int32Array(C)));
  const out = names.unique(`${bias}_dequantized`);
  node.input[2] = out;
  edits.removeIfUnused(site, bias);
  stats.dequantizeNodes++;
  return makeNode('DequantizeLinear', [qn, sn, zn], [out], { name: names.unique(`${base}_DequantizeLinear`), attributes: [makeAttribute('axis', 0, true)] });
}
