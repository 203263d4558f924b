/**
 * Which values of the graph are carried as 8-bit integers, for the anchors static.ts chose (the
 * MatMul / Gemm / Conv layers with int8 weights). One pass in graph order (topological), then pruning:
 *
 * - **anchor inputs** and **Conv outputs** (QLinearConv writes 8-bit values) are always quantized;
 * - **clamps folded into a QuantizeLinear**: a Relu, a Clip with constant bounds, or a Max / Min with a
 *   constant scalar right after an anchor or an integer op (its one reader) becomes the saturation of
 *   that op's QuantizeLinear, whose range is set to the clamp's bounds with the lower bound exact
 *   (calibrate.ts, clampParams): quantize_static's Relu folding, extended to the Relu6 / Clip of
 *   MobileNets and the Max(x, −0.4) that openWakeWord's embedding CNN puts after every LeakyRelu;
 * - **moves** (MaxPool, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, Resize) of a quantized value
 *   run on its integers with its scale and zero point;
 * - **integer ops** ("qops"): onnxruntime fuses DQ → op → Q into its QLinear kernels for
 *     LeakyRelu, Sigmoid, GlobalAveragePool, AveragePool   (one DQ input: QLinearLeakyRelu, …)
 *     Add, Mul                                             (two DQ inputs: QLinearAdd, QLinearMul)
 *     Concat                                               (a DQ per input: QLinearConcat)
 *   (onnxruntime's QDQ selectors: UnarySelector, BinarySelector, InputVariadicSelector; the CPU EP,
 *   which onnxruntime-web's wasm backend is). An op becomes one when every input it computes on is
 *   quantized (a constant input of Add / Mul is quantized too, with uint8 activations: the selector
 *   needs a DequantizeLinear on both inputs), so the value flows from integer kernel to integer kernel
 *   instead of going DQ → float op → Q. It pays only when something reads its output as integers:
 *   pruning drops every integer op whose output no anchor, integer op or move (that is itself read
 *   so) reads.
 */
import { DataType } from '../../onnx/dtypes.js';
import { attrFloat, attrInt, GraphIndex, opsetVersion } from '../../onnx/graph.js';
import { tensorFloat32 } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto } from '../../onnx/types.js';
import type { Anchor, QOp, QuantizedValue } from './static-types.js';

/** Ops that only move or select values: run on 8-bit data with the input's scale and zero point. */
const MOVE_OPS = new Set(['MaxPool', 'Flatten', 'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Resize']);
/** MaxPool takes int8/uint8 from opset 12, Resize from 11; the others from 13 at the latest. */
const MOVE_MIN_OPSET = 13;

const UNARY = new Set(['LeakyRelu', 'Sigmoid', 'GlobalAveragePool', 'AveragePool']);
const BINARY = new Set(['Add', 'Mul']);

/** A constant's single value, when it holds one (a scalar or a tensor of one element). */
function constScalar(idx: GraphIndex, name: string | undefined): number | undefined {
  if (!name) return undefined;
  const site = idx.weight(name);
  if (!site || site.tensor.dataType !== DataType.FLOAT) return undefined;
  const v = tensorFloat32(site.tensor);
  return v.length === 1 ? v[0] : undefined;
}

/** The bounds a clamp node applies and the input it clamps (undefined: not a clamp of constant bounds). */
export function clampOf(n: NodeProto, idx: GraphIndex): { input: string; lo: number; hi: number } | undefined {
  switch (n.opType) {
    case 'Relu':
      return { input: n.input[0], lo: 0, hi: Infinity };
    case 'Clip': {
      if (n.input.length > 1) {
        const lo = n.input[1] ? constScalar(idx, n.input[1]) : -Infinity;
        const hi = n.input[2] ? constScalar(idx, n.input[2]) : Infinity;
        return lo === undefined || hi === undefined ? undefined : { input: n.input[0], lo, hi };
      }
      return { input: n.input[0], lo: attrFloat(n, 'min', -Infinity), hi: attrFloat(n, 'max', Infinity) };
    }
    case 'Max':
    case 'Min': {
      if (n.input.length !== 2) return undefined;
      const k = constScalar(idx, n.input[1]) !== undefined ? 1 : constScalar(idx, n.input[0]) !== undefined ? 0 : -1;
      if (k < 0) return undefined;
      const c = constScalar(idx, n.input[k])!;
      return { input: n.input[1 - k], lo: n.opType === 'Max' ? c : -Infinity, hi: n.opType === 'Min' ? c : Infinity };
    }
  }
  return undefined;
}

/** The integer op a node can become with the values quantized so far (undefined: none). */
function qopOf(n: NodeProto, idx: GraphIndex, values: Map<string, QuantizedValue>, constants: boolean): QOp | undefined {
  const op = n.opType ?? '';
  if (n.output.length !== 1 || !n.output[0]) return undefined;
  if (UNARY.has(op)) return values.has(n.input[0]) ? { node: n, kind: 'unary', reads: [{ value: n.input[0] }] } : undefined;
  if (BINARY.has(op) && n.input.length === 2) {
    const reads: QOp['reads'] = [];
    for (const i of n.input) {
      if (values.has(i)) reads.push({ value: i });
      else if (constants && idx.weight(i)?.tensor.dataType === DataType.FLOAT) reads.push({ constant: i });
      else return undefined;
    }
    return reads.some((r) => 'value' in r) ? { node: n, kind: 'binary', reads } : undefined;
  }
  if (op === 'Concat' && n.input.length > 1 && n.input.every((i) => values.has(i))) return { node: n, kind: 'concat', reads: n.input.map((value) => ({ value })) };
  return undefined;
}

/**
 * The values carried as integers and the integer ops, for `anchors`. `disabled`: ops that must stay
 * float (the activation guard's choice); `constants`: whether constant inputs of Add / Mul may be
 * quantized (uint8 activations only: onnxruntime's x86 and wasm kernels would not fuse int8 ones).
 */
export function planValues(model: ModelProto, index: GraphIndex, anchors: Map<NodeProto, Anchor>, disabled: ReadonlySet<NodeProto>, constants: boolean): { values: Map<string, QuantizedValue>; qops: Map<NodeProto, QOp> } {
  const g = index.graph;
  const values = new Map<string, QuantizedValue>();
  const qops = new Map<NodeProto, QOp>();
  const want = (name: string): void => {
    if (values.has(name)) return;
    const producer = index.producer.get(name);
    if (!producer) values.set(name, { name, source: 'input' });
    else values.set(name, { name, source: anchors.has(producer) ? 'anchor' : 'float', producer });
  };
  const axisOf = (a: Anchor): 1 | -1 | undefined => (a.kind === 'conv' ? 1 : a.kind === 'matmul' || attrInt(a.node, 'transA', 0) === 0 ? -1 : undefined);
  for (const a of anchors.values()) {
    want(a.node.input[0]);
    values.get(a.node.input[0])!.channelAxis ??= axisOf(a);
    if (a.kind === 'conv') {
      want(a.node.output[0]);
      values.get(a.node.output[0])!.channelAxis ??= 1;
    }
  }
  const moves = (opsetVersion(model, '') ?? 1) >= MOVE_MIN_OPSET;
  for (const n of g.node) {
    if ((n.domain ?? '') !== '') continue;
    const op = n.opType ?? '';
    const c = clampOf(n, index);
    if (c && c.lo <= 0 && c.hi >= 0) {
      const e = c.input;
      const p = index.producer.get(e);
      const before = values.get(e);
      // A Relu after any anchor folds (its Gemm / MatMul then writes 8-bit values); other clamps fold
      // where the value is quantized anyway.
      const folds = p && (anchors.has(p) || qops.has(p)) && p.output[0] === e && index.consumersOf(e).length === 1 && !index.isGraphOutput(e) && (before || (op === 'Relu' && anchors.has(p)));
      if (folds) {
        values.delete(e);
        const out = values.get(n.output[0]);
        const axis = out?.channelAxis ?? before?.channelAxis ?? (anchors.get(p)?.kind === 'conv' ? 1 : anchors.has(p) ? -1 : undefined);
        values.set(n.output[0], { name: n.output[0], source: anchors.has(p) ? 'anchor' : 'qop', producer: p, folded: n, clamp: { lo: c.lo, hi: c.hi }, channelAxis: axis });
        continue;
      }
    }
    if (MOVE_OPS.has(op)) {
      const from = values.get(n.input[0]);
      if (!moves || !from) continue;
      if (n.output.slice(1).some((o) => o && (index.consumersOf(o).length || index.isGraphOutput(o)))) continue;
      values.set(n.output[0], { name: n.output[0], source: 'move', producer: n, from });
      continue;
    }
    if (disabled.has(n) || anchors.has(n)) continue;
    const q = qopOf(n, index, values, constants);
    if (!q) continue;
    qops.set(n, q);
    const out = values.get(n.output[0]);
    const first = values.get((q.reads.find((r) => 'value' in r) as { value: string }).value);
    values.set(n.output[0], { name: n.output[0], source: 'qop', producer: n, channelAxis: out?.channelAxis ?? first?.channelAxis });
  }
  prune(g.node, anchors, values, qops);
  // Every anchor's input stays quantized whatever pruning removed around it (then after its float producer).
  for (const a of anchors.values()) want(a.input);
  return { values, qops };
}

/**
 * Drops integer ops (and the moves of their outputs) that nothing reads as integers, until none is left.
 * Moves are visited in graph order (the map's order is not: an anchor's input is entered before the
 * pass, and keeps its place when the pass makes it a move).
 */
function prune(nodes: NodeProto[], anchors: Map<NodeProto, Anchor>, values: Map<string, QuantizedValue>, qops: Map<NodeProto, QOp>): void {
  const at = new Map(nodes.map((n, i) => [n, i]));
  const inOrder = () => [...values.values()].filter((v) => v.source === 'move').sort((a, b) => at.get(a.producer!)! - at.get(b.producer!)!);
  for (;;) {
    const readers = new Set<string>();
    for (const a of anchors.values()) readers.add(a.input);
    for (const q of qops.values()) for (const r of q.reads) if ('value' in r) readers.add(r.value);
    // A move is a reader when something reads its own output as integers: chains from their last link.
    for (const m of inOrder().reverse()) if (readers.has(m.name)) readers.add(m.from!.name);
    let dropped = false;
    for (const v of [...values.values()]) {
      if (v.source !== 'qop' || readers.has(v.name)) continue;
      qops.delete(v.producer!);
      values.delete(v.name);
      dropped = true;
    }
    if (!dropped) return;
    // Moves of dropped values go with them, from the first link of each chain on.
    for (const v of inOrder()) if (values.get(v.from!.name) !== v.from) values.delete(v.name);
  }
}
