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
import { dimsOf, makeTensor, tensorFloat32 } from '../../onnx/tensor.js';
import type { NodeProto } from '../../onnx/types.js';
import { activationParams, type ActivationParams } from './calibrate.js';
import type { GraphEdits } from './edits.js';
import type { Target } from './select.js';
import type { QuantizedValue, StaticPlan } from './static-types.js';

const INT32_MAX = 2 ** 31 - 1;

export interface StaticEmitStats {
  /** QuantizeLinear / DequantizeLinear nodes written for activations and biases. */
  quantizeNodes: number;
  dequantizeNodes: number;
  /** Relu nodes folded into a QuantizeLinear; move ops running on 8-bit values. */
  foldedRelu: number;
  movedOps: string[];
  /** Ops written for onnxruntime's QLinear kernels (QLinearAdd, QLinearLeakyRelu, …), by op type. */
  integerOps: Record<string, number>;
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
  const stats: StaticEmitStats = { quantizeNodes: 0, dequantizeNodes: 0, foldedRelu: 0, movedOps: [], integerOps: {}, clampedBias: 0 };
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
  // Anchors read their input 0 as integers, integer ops every input that is a quantized value.
  const anchorReads = (n: NodeProto, v: QuantizedValue) => plan.anchors.get(n)?.input === v.name || !!plan.qops.get(n)?.reads.some((r) => 'value' in r && r.value === v.name);
  const needsFloat = (v: QuantizedValue) => idx.isGraphOutput(v.name) || idx.consumersOf(v.name).some((n) => !anchorReads(n, v) && moveFrom.get(n) !== v);

  // The integers each anchor or integer op reads, per value: one name (uint8), or its own pair (int8).
  const readsFrom = new Map<NodeProto, Map<string, string>>();
  const forAnchor = {
    has: (n: NodeProto, v: QuantizedValue) => !!readsFrom.get(n)?.has(v.name),
    get: (n: NodeProto, v: string) => readsFrom.get(n)!.get(v)!,
    set: (n: NodeProto, v: QuantizedValue, q: string) => {
      if (!readsFrom.has(n)) readsFrom.set(n, new Map());
      readsFrom.get(n)!.set(v.name, q);
    },
  };
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
    if (v.source === 'anchor' || v.source === 'qop') {
      if (v.folded) {
        edits.replace(g, v.folded, []);
        stats.foldedRelu++;
        src = p!.output[0];
      } else p!.output[0] = src = names.unique(`${v.name}_float`);
    }
    if (v.source === 'move') stats.movedOps.push(p!.opType!);
    const nodes: NodeProto[] = [];
    const floatView = (v.source === 'anchor' || v.source === 'qop') && needsFloat(v);
    if (!pairs) {
      const q = quantized(v);
      qName.set(v, q);
      nodes.push(Q(v, src, q));
      if (floatView) nodes.push(DQ(v, q, v.name));
      for (const n of idx.consumersOf(v.name)) if (anchorReads(n, v)) forAnchor.set(n, v, q);
    } else {
      for (const n of idx.consumersOf(v.name)) {
        if (!anchorReads(n, v) || forAnchor.has(n, v)) continue;
        const q = quantized(v);
        nodes.push(Q(v, src, q));
        forAnchor.set(n, v, q);
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
    for (const n of idx.consumersOf(v.name)) if (anchorReads(n, v)) forAnchor.set(n, v, qName.get(v)!);
  }
  for (const [p, nodes] of after) edits.replace(g, p, [p, ...nodes]);
  if (atStart.length && g.node.length) edits.insertBefore(g, g.node[0], atStart);

  // Each anchor reads its input through its own DequantizeLinear, and its bias as int32.
  for (const a of plan.anchors.values()) {
    const n = a.node;
    const v = plan.values.get(a.input)!;
    const x = names.unique(`${v.name}_dequantized`);
    const before = [DQ(v, forAnchor.get(n, v.name), x)];
    n.input[0] = x;
    // The weight was stored as [K, N] (dq.ts, transpose): the Gemm reads it untransposed.
    if (a.kind === 'gemm' && a.target.channelAxis === 0) setTransB0(n);
    const bias = a.kind !== 'matmul' ? n.input[2] : undefined;
    if (bias) before.push(quantizeBias(a.target, bias, v.params!, weightScales(a.target), n, plan, edits, stats));
    edits.insertBefore(g, n, before);
  }
  // Each integer op reads every quantized input through its own DequantizeLinear, and a constant input
  // as an 8-bit constant of its own (onnxruntime's binary selector needs a DQ on both inputs).
  for (const q of plan.qops.values()) {
    const n = q.node;
    const before: NodeProto[] = [];
    q.reads.forEach((r, i) => {
      if ('value' in r) {
        const v = plan.values.get(r.value)!;
        const x = names.unique(`${v.name}_dequantized`);
        before.push(DQ(v, forAnchor.get(n, v.name), x));
        n.input[i] = x;
      } else {
        const x = names.unique(`${r.constant}_dequantized`);
        before.push(quantizeConstant(r.constant, x, plan, edits));
        stats.dequantizeNodes++;
        n.input[i] = x;
      }
    });
    stats.integerOps[n.opType!] = (stats.integerOps[n.opType!] ?? 0) + 1;
    edits.insertBefore(g, n, before);
  }
  return stats;
}

/** A float constant as uint8 with its own scale and zero point over [min(c, 0), max(c, 0)], and its DequantizeLinear. */
function quantizeConstant(name: string, out: string, plan: StaticPlan, edits: GraphEdits): NodeProto {
  const site = plan.index.weight(name)!;
  const c = tensorFloat32(site.tensor);
  let lo = 0;
  let hi = 0;
  for (const x of c) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const p = activationParams({ lo, hi }, 'uint8', false);
  const codes = Uint8Array.from(c, (x) => Math.max(0, Math.min(255, Math.round(x / p.scale) + p.zero)));
  const q = edits.addTensor(site, `${name}_quantized`, makeTensor('', DataType.UINT8, dimsOf(site.tensor), codes));
  const s = edits.addTensor(site, `${name}_scale`, makeTensor('', DataType.FLOAT, [], Float32Array.of(p.scale)));
  const z = edits.addTensor(site, `${name}_zero_point`, makeTensor('', DataType.UINT8, [], Uint8Array.of(p.zero)));
  edits.removeIfUnused(site, name);
  return makeNode('DequantizeLinear', [q, s, z], [out], { name: edits.names.unique(`${name}_DequantizeLinear`) });
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
