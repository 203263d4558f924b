/**
 * Dynamic quantization (what ONNX Runtime's quantize_dynamic writes): activations are quantized to
 * uint8 at run time, weights are stored 8-bit.
 *
 *   A ─ DynamicQuantizeLinear ─┬ A_q (uint8) ─ MatMulInteger(A_q, W_q [K, N], A_zp, W_zp) ─ Cast(float) ─┐
 *                              ├ A_scale ─ Mul(·, W_scale [N] or []) ─────────────────────────────────── Mul ─ Y
 *                              └ A_zp
 *
 * ORT fuses this into DynamicQuantizeMatMul. W_zp per column [N] (int8 or uint8) is supported by ORT's
 * MatMulInteger. Conv: DynamicQuantizeLinear → ConvInteger(X_q, W_q, X_zp[, W_zp]) → Cast → Mul by
 * X_scale · W_scale [1, M, 1, …] → Add bias [1, M, 1, …]; ORT's ConvInteger takes ONE weight zero point
 * ("Non per-tensor quantization is not supported"), so only symmetric weights (zero 0 for int8, 128 for
 * uint8, the same in every channel) can be per-channel.
 *
 * The weights are stored as uint8 whatever their scheme (int8 codes + 128, with that zero point): on x86
 * CPUs without VNNI (AVX2, AVX-512 without VNNI), onnxruntime's uint8 × int8 kernels multiply with
 * vpmaddubsw, whose 16-bit sums of pairs saturate (255 · 127 · 2 > 32767): measured on an AMD EPYC with
 * AVX2 only, the spam transformer's logits were off by 0.16 against the exact product; uint8 × uint8
 * widens to 16 bits first and is exact there and everywhere else (docs/facts.md). `dtypeAfter` stays
 * the scheme's (int8: 255 symmetric levels).
 */
import { DataType } from '../../onnx/dtypes.js';
import { makeAttribute, makeNode, type GraphIndex } from '../../onnx/graph.js';
import { makeTensor } from '../../onnx/tensor.js';
import type { TensorProto } from '../../onnx/types.js';
import type { NodeProto } from '../../onnx/types.js';
import { codeBytes, dtypeName, type Emitted } from './dq.js';
import type { GraphEdits } from './edits.js';
import type { Plan } from './forms.js';
import { addBias } from './matmulnbits.js';
import type { Target } from './select.js';
import { channelView, transposeCodes, type WeightQuant } from './weights.js';
import { attrFloat } from '../../onnx/graph.js';

export function emitMatMulInteger(t: Target, plan: Plan, q: WeightQuant, edits: GraphEdits): Emitted {
  const cv = channelView(q, t.channelAxis);
  if (!cv) throw new Error(`MatMulInteger needs per-channel or per-tensor weights (${t.name})`);
  const type = DataType.UINT8;
  // MatMulInteger reads B as [K, N]; Gemm with transB=1 stores [N, K].
  const [d0, d1] = t.shape;
  const kn = t.channelAxis === 0 ? transposeCodes(cv.codes, d0, d1) : cv.codes;
  const K = t.channelAxis === 0 ? d1 : d0;
  const N = t.channelAxis === 0 ? d0 : d1;
  let bytes = 0;
  const add = (suffix: string, dt: number, dims: number[], data: Uint8Array | Float32Array) => {
    const tensor = makeTensor('', dt, dims, data);
    bytes += tensor.rawData!.length;
    return edits.addTensor(t.site, `${t.weight}_${suffix}`, tensor);
  };
  const paramDims = cv.perTensor ? [] : [N];
  const wName = add('quantized', type, [K, N], codeBytes(kn, 8, false));
  const zName = add('zero_point', type, paramDims, codeBytes(cv.zeros, 8, false));
  const scaleNames = new Map<number, string>();
  const scaleFor = (alpha: number) => {
    let name = scaleNames.get(alpha);
    if (!name) {
      name = add('scale', DataType.FLOAT, paramDims, alpha === 1 ? cv.scales : cv.scales.map((s) => s * alpha));
      scaleNames.set(alpha, name);
    }
    return name;
  };
  for (const u of t.uses) {
    const n = u.node;
    const base = n.name || `${t.weight}_MatMulInteger`;
    const alpha = t.kind === 'gemm' ? attrFloat(n, 'alpha', 1) : 1;
    const bias = t.kind === 'gemm' ? (n.input[2] ?? '') : '';
    const v = (s: string) => edits.names.unique(`${base}_${s}`);
    const [aq, as, az, mi, mf, sc] = ['quantized_input', 'input_scale', 'input_zero_point', 'integer', 'float', 'scales'].map(v);
    const out = bias ? v('matmul') : n.output[0];
    const nodes: NodeProto[] = [
      makeNode('DynamicQuantizeLinear', [n.input[0]], [aq, as, az], { name: v('DynamicQuantizeLinear') }),
      makeNode('MatMulInteger', [aq, wName, az, zName], [mi], { name: v('MatMulInteger') }),
      makeNode('Cast', [mi], [mf], { name: v('Cast'), attributes: [makeAttribute('to', DataType.FLOAT, true)] }),
      makeNode('Mul', [as, scaleFor(alpha)], [sc], { name: v('scales_Mul') }),
      makeNode('Mul', [mf, sc], [out], { name: bias ? v('Mul') : n.name || v('Mul') }),
    ];
    if (bias) nodes.push(...addBias(n, out, bias, edits, base));
    edits.replace(u.graph, n, nodes);
  }
  edits.removeWeight(t.site);
  return { bytesAfter: bytes, dtypeAfter: dtypeName(8, plan.signed) };
}

export function emitConvInteger(t: Target, plan: Plan, q: WeightQuant, edits: GraphEdits, indexOf: (u: Target['uses'][number]) => GraphIndex, read: (t: TensorProto) => Float32Array): Emitted {
  const cv = channelView(q, 0);
  if (!cv || !plan.symmetric) throw new Error(`ConvInteger needs symmetric per-channel weights (${t.name})`);
  const type = DataType.UINT8;
  const M = t.shape[0];
  const bcast = [1, M, ...t.shape.slice(2).map(() => 1)];
  let bytes = 0;
  const add = (suffix: string, dt: number, dims: number[], data: Uint8Array | Float32Array) => {
    const tensor = makeTensor('', dt, dims, data);
    bytes += tensor.rawData!.length;
    return edits.addTensor(t.site, `${t.weight}_${suffix}`, tensor);
  };
  const wName = add('quantized', type, t.shape, codeBytes(cv.codes, 8, false));
  // Symmetric: one zero point for all channels (128: uint8 storage).
  const zName = add('zero_point', type, [], codeBytes(cv.zeros.subarray(0, 1), 8, false));
  const sName = add('scale', DataType.FLOAT, cv.perTensor ? [] : bcast, cv.scales);
  for (const u of t.uses) {
    const n = u.node;
    const base = n.name || `${t.weight}_ConvInteger`;
    const v = (s: string) => edits.names.unique(`${base}_${s}`);
    const [xq, xs, xz, ci, cf, sc] = ['quantized_input', 'input_scale', 'input_zero_point', 'integer', 'float', 'scales'].map(v);
    const biasName = n.input[2] ?? '';
    const out = biasName ? v('conv') : n.output[0];
    const nodes: NodeProto[] = [
      makeNode('DynamicQuantizeLinear', [n.input[0]], [xq, xs, xz], { name: v('DynamicQuantizeLinear') }),
      makeNode('ConvInteger', [xq, wName, xz, zName], [ci], { name: v('ConvInteger'), attributes: n.attribute.slice() }),
      makeNode('Cast', [ci], [cf], { name: v('Cast'), attributes: [makeAttribute('to', DataType.FLOAT, true)] }),
      makeNode('Mul', [xs, sName], [sc], { name: v('scales_Mul') }),
      makeNode('Mul', [cf, sc], [out], { name: biasName ? v('Mul') : n.name || v('Mul') }),
    ];
    if (biasName) {
      // The bias [M] reshaped to broadcast over [N, M, spatial…]: a new constant when it is one.
      const site = indexOf(u).weight(biasName);
      let b: string;
      if (site && site.tensor.dataType === DataType.FLOAT) {
        b = edits.addTensor(site, `${biasName}_broadcast`, makeTensor('', DataType.FLOAT, bcast, read(site.tensor).slice()));
        edits.removeIfUnused(site, biasName);
      } else {
        const shape = v('bias_shape');
        nodes.push(makeNode('Constant', [], [shape], { name: v('bias_shape_Constant'), attributes: [makeAttribute('value', makeTensor(shape, DataType.INT64, [bcast.length], BigInt64Array.from(bcast.map(BigInt))))] }));
        b = v('bias_broadcast');
        nodes.push(makeNode('Reshape', [biasName, shape], [b], { name: v('bias_Reshape') }));
      }
      nodes.push(makeNode('Add', [out, b], [n.output[0]], { name: n.name || v('Add') }));
    }
    edits.replace(u.graph, n, nodes);
  }
  edits.removeWeight(t.site);
  return { bytesAfter: bytes, dtypeAfter: dtypeName(8, plan.signed) };
}
