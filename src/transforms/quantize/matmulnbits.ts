/**
 * com.microsoft MatMulNBits (ONNX Runtime contrib op): Y = A · dequant(B)ᵀ, B block-quantized along K.
 *
 *   A            float [..., K]
 *   B            uint8 [N, nBlocks, block·bits/8], nBlocks = ceil(K / block); row n holds column n of
 *                the float weight; 4-bit codes two per byte, even k in the low nibble; K is padded to
 *                whole blocks (padding codes = the block's zero point)
 *   scales       float [N · nBlocks] (block b of column n at n·nBlocks + b)
 *   zero_points  uint8, optional: 4-bit packed [N · ceil(nBlocks/2)] (even block low nibble), 8-bit
 *                [N · nBlocks]; default 2^(bits−1) (8 or 128)
 *   attributes   K, N, bits (4 or 8), block_size (16, 32, 64, 128 or 256 in ORT 1.30),
 *                accuracy_level (0 unset, 1 fp32, 2 fp16, 3 bf16, 4 int8 activations)
 *
 * MatMul(A, W) becomes MatMulNBits(A, …); Gemm(A, W, C) (transA = 0) becomes MatMulNBits with alpha
 * folded into the scales, then Add(·, beta·C).
 */
import { DataType } from '../../onnx/dtypes.js';
import { attrFloat, makeAttribute, makeNode } from '../../onnx/graph.js';
import { makeTensor } from '../../onnx/tensor.js';
import type { NodeProto } from '../../onnx/types.js';
import type { Emitted } from './dq.js';
import { dtypeName } from './dq.js';
import type { GraphEdits } from './edits.js';
import type { Plan } from './forms.js';
import { matMulNBitsWeights, splitAt } from './layout.js';
import type { Target } from './select.js';
import { rowsView, type WeightQuant } from './weights.js';

export function emitMatMulNBits(t: Target, plan: Plan, q: WeightQuant, edits: GraphEdits, accuracyLevel: number): Emitted {
  const block = plan.opBlock!;
  let w: ReturnType<typeof matMulNBitsWeights>;
  let N: number;
  let K: number;
  if (q.nibbles && q.layout === 'rows' && q.axis === t.reduceAxis && q.group === block) {
    // Codes packed by the kernel in B's layout: used as they are (reading q.codes would unpack them).
    const [outer, k, inner] = splitAt(q.dims, t.reduceAxis);
    N = outer * inner;
    K = k;
    w = matMulNBitsWeights(q, N, K, block);
  } else {
    const v = rowsView(q, t.reduceAxis, block);
    N = v.R;
    K = v.K;
    w = matMulNBitsWeights({ ...q, nibbles: undefined, codes: v.codes, scales: v.scales, zeros: v.zeros }, N, K, block);
  }
  const blob = (block * q.bits) / 8;
  let bytes = 0;
  const add = (suffix: string, dt: number, dims: number[], data: Uint8Array | Float32Array) => {
    const tensor = makeTensor('', dt, dims, data);
    bytes += tensor.rawData!.length;
    return edits.addTensor(t.site, `${t.weight}_${suffix}`, tensor);
  };
  const bName = add('nbits', DataType.UINT8, [N, w.nBlocks, blob], w.B);
  const zName = w.zeroPoints ? add('zero_points', DataType.UINT8, [w.zeroPoints.length], w.zeroPoints) : undefined;
  // Scales are per use when Gemm's alpha is folded into them; uses with the same alpha share them.
  const scaleNames = new Map<number, string>();
  const scalesFor = (alpha: number) => {
    let name = scaleNames.get(alpha);
    if (!name) {
      const s = alpha === 1 ? w.scales : w.scales.map((x) => x * alpha);
      name = add('scales', DataType.FLOAT, [s.length], s);
      scaleNames.set(alpha, name);
    }
    return name;
  };
  const attributes = () => {
    const a = [makeAttribute('K', K, true), makeAttribute('N', N, true), makeAttribute('bits', q.bits, true), makeAttribute('block_size', block, true)];
    if (accuracyLevel) a.push(makeAttribute('accuracy_level', accuracyLevel, true));
    return a;
  };
  for (const u of t.uses) {
    const n = u.node;
    const alpha = t.kind === 'gemm' ? attrFloat(n, 'alpha', 1) : 1;
    const inputs = [n.input[0], bName, scalesFor(alpha)];
    if (zName) inputs.push(zName);
    const base = n.name || `${t.weight}_MatMulNBits`;
    const bias = t.kind === 'gemm' ? (n.input[2] ?? '') : '';
    const nodes: NodeProto[] = [];
    if (!bias) {
      nodes.push(makeNode('MatMulNBits', inputs, [n.output[0]], { name: n.name || edits.names.unique(base), domain: 'com.microsoft', attributes: attributes() }));
    } else {
      const mm = edits.names.unique(`${base}_matmul`);
      nodes.push(makeNode('MatMulNBits', inputs, [mm], { name: edits.names.unique(`${base}_MatMulNBits`), domain: 'com.microsoft', attributes: attributes() }));
      nodes.push(...addBias(n, mm, bias, edits, base));
    }
    edits.replace(u.graph, n, nodes);
  }
  edits.removeWeight(t.site);
  return { bytesAfter: bytes, dtypeAfter: dtypeName(q.bits, plan.signed) };
}

/** Gemm's `beta · C` added to `mm`, written to the Gemm's output. */
export function addBias(gemm: NodeProto, mm: string, bias: string, edits: GraphEdits, base: string): NodeProto[] {
  const beta = attrFloat(gemm, 'beta', 1);
  const out: NodeProto[] = [];
  let c = bias;
  if (beta !== 1) {
    const betaName = edits.names.unique(`${base}_beta`);
    out.push(makeNode('Constant', [], [betaName], { name: edits.names.unique(`${base}_beta_Constant`), attributes: [makeAttribute('value', makeTensor(betaName, DataType.FLOAT, [], Float32Array.of(beta)))] }));
    c = edits.names.unique(`${base}_scaled_bias`);
    out.push(makeNode('Mul', [bias, betaName], [c], { name: edits.names.unique(`${base}_beta_Mul`) }));
  }
  out.push(makeNode('Add', [mm, c], [gemm.output[0]], { name: gemm.name || edits.names.unique(`${base}_Add`) }));
  return out;
}
