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
  const Q = (v: QuantizedValue, input: string, output: string): NodeProto => {
    stats.quantizeNodes++;
    return makeNode('QuantizeLinear', [input, ...paramsOf(v)], [output], { name: names.unique(`${v.name}_QuantizeLinear`) });
  };
  const DQ = (v: QuantizedValue, input: string, output: string): NodeProto => {
    stats.dequantizeNodes++;
    return makeNode('DequantizeLinear', [input, ...paramsOf(v)], [output], { name: names.unique(`${v.name}_DequantizeLinear`) });
  };
  const quantized = (v: QuantizedValue) => names.unique(`${v.name}_quantized`);

  // uint8: one QuantizeLinear per value, read by a DequantizeLinear per anchor and by move ops running
  // on the integers. int8: onnxruntime's x86 and wasm kernels take uint8 activations only, and ORT
  // rewrites int8 to uint8 only for a QuantizeLinear with exactly one DequantizeLinear after it (its
  // QDQS8ToU8 pass); so int8 gets one Q → DQ pair per reader, and move ops stay between a DQ and a Q of
  // the same parameters, which ORT turns into the integer op itself (MaxPool; Flatten stays float).
  const pairs = plan.activations === 'int8';
  const moveFrom = new Map<NodeProto, QuantizedValue>();
  if (!pairs) for (const v of plan.values.values()) if (v.source === 'move') moveFrom.set(v.producer!, v.from!);
  const anchorReads = (n: NodeProto, v: QuantizedValue) => plan.anchors.get(n)?.input === v.name;
  const needsFloat = (v: QuantizedValue) => idx.isGraphOutput(v.name) || idx.consumersOf(v.name).some((n) => !anchorReads(n, v) && moveFrom.get(n) !== v);

  // The integers each anchor reads, per value: one name (uint8), or the anchor's own pair (int8).
  const forAnchor = new Map<NodeProto, string>();
  const qName = new Map<QuantizedValue, string>();
  // Quantize each value where it is made (nodes after a producer are collected: one node may make several).
  const atStart: NodeProto[] = [];
  const after = new Map<NodeProto, NodeProto[]>();
  const follow = (p: NodeProto, nodes: NodeProto[]) => after.set(p, [...(after.get(p) ?? []), ...nodes]);
  for (const v of plan.values.values()) {
    const p = v.producer;
    if (v.source === 'move' && !pairs) {
      // Runs on the integers of `from` (renamed below, once every value has its name).
      qName.set(v, quantized(v));
      stats.movedOps.push(p!.opType!);
      continue;
    }
    // The float value the QuantizeLinear reads.
    let src = v.name;
    if (v.source === 'anchor') {
      if (v.folded) {
        edits.replace(g, v.folded, []);
        stats.foldedRelu++;
        src = p!.output[0];
      } else p!.output[0] = src = names.unique(`${v.name}_float`);
    }
    if (v.source === 'move') stats.movedOps.push(p!.opType!);
    const nodes: NodeProto[] = [];
    const floatView = v.source === 'anchor' && needsFloat(v);
    if (!pairs) {
      const q = quantized(v);
      qName.set(v, q);
      nodes.push(Q(v, src, q));
      if (floatView) nodes.push(DQ(v, q, v.name));
      for (const n of idx.consumersOf(v.name)) if (anchorReads(n, v)) forAnchor.set(n, q);
    } else {
      for (const n of idx.consumersOf(v.name)) {
        if (!anchorReads(n, v) || forAnchor.has(n)) continue;
        const q = quantized(v);
        nodes.push(Q(v, src, q));
        forAnchor.set(n, q);
      }
      if (floatView) {
        const q = quantized(v);
        nodes.push(Q(v, src, q), DQ(v, q, v.name));
      }
    }
    if (v.source === 'input') atStart.push(...nodes);
    else follow(p!, nodes);
  }
  // Move ops read and write the integers (renamed after needsFloat has looked at the original names).
  for (const v of plan.values.values()) {
    if (v.source !== 'move' || pairs) continue;
    const p = v.producer!;
    p.input[0] = qName.get(v.from!)!;
    p.output[0] = qName.get(v)!;
    follow(p, needsFloat(v) ? [DQ(v, qName.get(v)!, v.name)] : []);
    for (const n of idx.consumersOf(v.name)) if (anchorReads(n, v)) forAnchor.set(n, qName.get(v)!);
  }
  for (const [p, nodes] of after) edits.replace(g, p, [p, ...nodes]);
  if (atStart.length && g.node.length) edits.insertBefore(g, g.node[0], atStart);

  // Each anchor reads its input through its own DequantizeLinear, and its bias as int32.
  for (const a of plan.anchors.values()) {
    const n = a.node;
    const v = plan.values.get(a.input)!;
    const x = names.unique(`${v.name}_dequantized`);
    const before = [DQ(v, forAnchor.get(n)!, x)];
    n.input[0] = x;
    // The weight was stored as [K, N] (dq.ts, transpose): the Gemm reads it untransposed.
    if (a.kind === 'gemm' && a.target.channelAxis === 0) setTransB0(n);
    const bias = a.kind !== 'matmul' ? n.input[2] : undefined;
    if (bias) before.push(quantizeBias(a.target, bias, v.params!, weightScales(a.target), n, plan, edits, stats));
    edits.insertBefore(g, n, before);
  }
  return stats;
}

function setTransB0(n: NodeProto): void {
  n.attribute = n.attribute.filter((a) => a.name !== 'transB');
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
  // One weight scale (per-tensor weights, e.g. below opset 13 where DequantizeLinear has no axis): one bias scale.
  const perTensor = ws.length === 1;
  const dims = perTensor ? [] : [C];
  const qn = edits.addTensor(site, `${bias}_quantized`, makeTensor('', DataType.INT32, [C], q));
  const sn = edits.addTensor(site, `${bias}_scale`, makeTensor('', DataType.FLOAT, dims, perTensor ? scales.subarray(0, 1) : scales));
  const zn = edits.addTensor(site, `${bias}_zero_point`, makeTensor('', DataType.INT32, dims, new Int32Array(perTensor ? 1 : C)));
  const out = names.unique(`${bias}_dequantized`);
  node.input[2] = out;
  edits.removeIfUnused(site, bias);
  stats.dequantizeNodes++;
  return makeNode('DequantizeLinear', [qn, sn, zn], [out], { name: names.unique(`${base}_DequantizeLinear`), attributes: perTensor ? [] : [makeAttribute('axis', 0, true)] });
}
