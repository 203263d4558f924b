/**
 * Weight-only QDQ: W_q (+ scale, zero point) → DequantizeLinear → the original op, unchanged.
 *
 *   per-tensor   scale [] and zero point [], no axis
 *   per-channel  scale [C], zero point [C], axis = the channel axis (opset ≥ 13)
 *   block-wise   scale and zero point = W's dims with dims[axis] → ceil(K / block), axis = the reduce
 *                axis, block_size = block (opset ≥ 21; INT4/UINT4 need opset 21 and IR 10 anyway)
 *
 * One DequantizeLinear per weight and graph that reads it, placed right before the first reader, so
 * a weight read inside one If branch is only dequantized when that branch runs (an outer-scope weight
 * read by one branch only has its codes moved into that branch); a weight read in several graphs, one of
 * them a subgraph, is dequantized once in its own graph and the subgraphs read the float result.
 */
import { DataType } from '../../onnx/dtypes.js';
import { makeAttribute, makeNode, nodeReads, type WeightSite } from '../../onnx/graph.js';
import { makeTensor } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../../onnx/types.js';
import type { GraphEdits } from './edits.js';
import { bytes8, packNibbles } from './layout.js';
import type { Plan } from './forms.js';
import type { Target } from './select.js';
import { blockedParams, channelView, originalCodes, transposeCodes, type WeightQuant } from './weights.js';

/** The ONNX type of stored codes. */
export function codeType(bits: 4 | 8, signed: boolean): number {
  if (bits === 8) return signed ? DataType.INT8 : DataType.UINT8;
  return signed ? DataType.INT4 : DataType.UINT4;
}

/** Unsigned codes (see rtn.ts) as the raw bytes of an INT8/UINT8/INT4/UINT4 tensor. */
export function codeBytes(codes: Uint8Array, bits: 4 | 8, signed: boolean, inPlace = false): Uint8Array {
  return bits === 8 ? bytes8(codes, signed, inPlace) : packNibbles(codes, signed);
}

/** True when every zero point is the signed type's 0 (then the input can be left out). */
export function zeroIsDefault(zeros: Uint8Array, bits: 4 | 8, signed: boolean): boolean {
  const mid = 1 << (bits - 1);
  return signed && zeros.every((z) => z === mid);
}

export interface Emitted {
  bytesAfter: number;
  dtypeAfter: string;
}

export interface DequantizeOptions {
  /** Write the zero point even when it is the default (the fused static ops take it as an input). */
  zeroPoint?: boolean;
  /** A 2-D [N, K] weight with channel axis 0 is stored transposed, [K, N] with axis 1: the caller
   *  turns its readers' transB off (onnxruntime-web's QGemm is ~3× slower with transB = 1). */
  transpose?: boolean;
}

export function emitDequantize(t: Target, plan: Plan, q: WeightQuant, edits: GraphEdits, opts: DequantizeOptions = {}): Emitted {
  const type = codeType(q.bits, plan.signed);
  const base = t.weight;
  let bytes = 0;
  const readers = new Set(t.uses.map((u) => u.graph));
  // Codes of an outer-scope weight read inside one subgraph only (an If branch, a Loop body) move into
  // that subgraph: onnxruntime fuses DequantizeLinear → MatMul only when the codes are constants of the
  // graph the DequantizeLinear is in (read from the outer scope, it refuses to load the model:
  // "TransposeDQWeightsForMatMulNBits Missing required weight"), and only that branch dequantizes.
  const [only] = readers;
  const home = readers.size === 1 && only !== t.site.graph ? siteIn(only, t) : t.site;
  const add = (suffix: string, dt: number, dims: number[], data: Uint8Array | Float32Array) => {
    const tensor = makeTensor('', dt, dims, data);
    bytes += tensor.rawData!.length;
    return edits.addTensor(home, `${base}_${suffix}`, tensor);
  };
  const transpose = opts.transpose === true && t.shape.length === 2 && t.channelAxis === 0;
  // The codes are this weight's alone (or a transposed copy) and garbage once emitted: converted in place.
  const codes = transpose ? transposeCodes(originalCodes(q), t.shape[0], t.shape[1]) : originalCodes(q);
  const qName = add('quantized', type, transpose ? [t.shape[1], t.shape[0]] : t.shape, codeBytes(codes, q.bits, plan.signed, true));
  const inputs = [qName];
  const attributes = [];
  const cv = channelView(q, t.channelAxis);
  if (cv) {
    const dims = cv.perTensor ? [] : [cv.scales.length];
    inputs.push(add('scale', DataType.FLOAT, dims, cv.scales));
    if (opts.zeroPoint || !zeroIsDefault(cv.zeros, q.bits, plan.signed)) inputs.push(add('zero_point', type, dims, codeBytes(cv.zeros, q.bits, plan.signed)));
    if (!cv.perTensor) attributes.push(makeAttribute('axis', transpose ? 1 : t.channelAxis, true));
  } else {
    const p = blockedParams(q);
    inputs.push(add('scale', DataType.FLOAT, p.dims, p.scales));
    if (!zeroIsDefault(p.zeros, q.bits, plan.signed)) inputs.push(add('zero_point', type, p.dims, codeBytes(p.zeros, q.bits, plan.signed)));
    attributes.push(makeAttribute('axis', q.axis, true), makeAttribute('block_size', q.group, true));
  }
  // One DequantizeLinear per graph that reads the weight, before its first reader there (uses are
  // collected in graph order). A weight read in several graphs, one of them a subgraph, is dequantized
  // once in its own graph, before the first node that reads it directly or through a subgraph: the
  // subgraphs read the float output from the outer scope (no copy of the codes per branch).
  const firstUse = new Map<GraphProto, NodeProto>();
  if (readers.size > 1 && [...readers].some((g) => g !== t.site.graph)) {
    const g = t.site.graph;
    const first = g.node.find((n) => nodeReads(n).includes(t.weight));
    if (first) {
      const out = edits.names.unique(`${base}_dequantized`);
      edits.insertBefore(g, first, [makeNode('DequantizeLinear', inputs, [out], { name: edits.names.unique(`${base}_DequantizeLinear`), attributes })]);
      for (const u of t.uses) u.node.input[u.input] = out;
      edits.removeWeight(t.site);
      return { bytesAfter: bytes, dtypeAfter: dtypeName(q.bits, plan.signed) };
    }
  }
  for (const u of t.uses) {
    if (!firstUse.has(u.graph)) firstUse.set(u.graph, u.node);
  }
  for (const [graph, node] of firstUse) {
    const out = edits.names.unique(`${base}_dequantized`);
    edits.insertBefore(graph, node, [
      makeNode('DequantizeLinear', inputs.slice(), [out], { name: edits.names.unique(`${base}_DequantizeLinear`), attributes: attributes.slice() }),
    ]);
    for (const u of t.uses) if (u.graph === graph) u.node.input[u.input] = out;
  }
  edits.removeWeight(t.site);
  return { bytesAfter: bytes, dtypeAfter: dtypeName(q.bits, plan.signed) };
}

/** Where a weight's quantized tensors go when they move into the subgraph `g` that alone reads it. */
function siteIn(g: GraphProto, t: Target): WeightSite {
  if (t.site.kind === 'initializer') return { kind: 'initializer', tensor: t.site.tensor, graph: g };
  return { ...t.site, graph: g, node: t.uses.find((u) => u.graph === g)!.node };
}

export function dtypeName(bits: 4 | 8, signed: boolean): string {
  return `${signed ? '' : 'u'}int${bits}`;
}
