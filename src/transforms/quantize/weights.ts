/**
 * A quantized weight and the views of it each op form needs.
 *
 * Two layouts come out of the kernels:
 * - 'axis': codes in the weight's own layout, one scale per index of `axis` (per-channel), or a single
 *   scale for the whole tensor (axis = −1);
 * - 'rows': codes in rows layout along `axis` (the reduce axis, see layout.ts): [R, K] with R = the
 *   product of the other dims; scales and zeros [R, ceil(K / group)].
 */
import { splitAt, fromRows, toRows, transpose2d } from './layout.js';
import type { Quantized } from './rtn.js';
import { quantizeAxis, quantizeBlocks, quantizeBlocksColumns } from './rtn-simd.js';
import type { Plan } from './forms.js';
import type { Target } from './select.js';

export interface WeightQuant extends Quantized {
  layout: 'axis' | 'rows';
  axis: number;
  /** Rows layout: values per scale along K. */
  group: number;
  dims: number[];
}

const f32 = (n: number) => new Float32Array(n);
const u8 = (n: number) => new Uint8Array(n);

/** Whether a plan quantizes in rows layout (blocks, MatMulNBits, GatherBlockQuantized). */
export function usesRows(plan: Plan): boolean {
  return typeof plan.granularity === 'number' || plan.form === 'matmulnbits' || plan.form === 'gatherblock';
}

/** Round-to-nearest quantization of one weight as its plan says. */
export function quantizeWeight(t: Target, plan: Plan, w: Float32Array): WeightQuant {
  const dims = t.shape;
  if (!usesRows(plan)) {
    if (plan.granularity === 'per-tensor') {
      return { ...quantizeAxis(w, 1, 1, w.length, plan.bits, plan.symmetric), layout: 'axis', axis: -1, group: 0, dims };
    }
    const [outer, C, inner] = splitAt(dims, t.channelAxis);
    return { ...quantizeAxis(w, outer, C, inner, plan.bits, plan.symmetric), layout: 'axis', axis: t.channelAxis, group: 0, dims };
  }
  const [outer, K, inner] = splitAt(dims, t.reduceAxis);
  const R = outer * inner;
  const group = typeof plan.granularity === 'number' ? plan.granularity : K;
  if (outer === 1 && inner > 1 && plan.granularity !== 'per-tensor') {
    // [K, N] with blocks down the columns (MatMul's B): no float transpose. MatMulNBits' 4-bit B is
    // these codes two per byte when K is whole blocks: asked for packed (codes unpacked only if read).
    const nibbles = plan.form === 'matmulnbits' && plan.bits === 4 && plan.opBlock === group && K % group === 0;
    // Object.assign, not a spread: a spread would read (unpack) lazily unpacked codes.
    return Object.assign(quantizeBlocksColumns(w, K, inner, group, plan.bits, plan.symmetric, nibbles), { layout: 'rows' as const, axis: t.reduceAxis, group, dims });
  }
  const rows = toRows(w, outer, K, inner, f32);
  if (plan.granularity === 'per-tensor') {
    // One scale, repeated per row so every rows-layout consumer can read it.
    const q = quantizeAxis(rows, 1, 1, rows.length, plan.bits, plan.symmetric);
    return { ...q, scales: new Float32Array(R).fill(q.scales[0]), zeros: new Uint8Array(R).fill(q.zeros[0]), layout: 'rows', axis: t.reduceAxis, group: K, dims };
  }
  return { ...quantizeBlocks(rows, R, K, group, plan.bits, plan.symmetric), layout: 'rows', axis: t.reduceAxis, group, dims };
}

/** Codes in the weight's own layout. */
export function originalCodes(q: WeightQuant): Uint8Array {
  if (q.layout === 'axis') return q.codes;
  const [outer, K, inner] = splitAt(q.dims, q.axis);
  return fromRows(q.codes, outer, K, inner, u8);
}

/**
 * Codes and per-block scales/zeros in rows layout along `reduceAxis` ([R, K]), with `block` values
 * per scale: what MatMulNBits and GatherBlockQuantized read. `block` must divide the quantization
 * group (or the group must cover the whole row).
 */
export function rowsView(q: WeightQuant, reduceAxis: number, block: number): { codes: Uint8Array; scales: Float32Array; zeros: Uint8Array; R: number; K: number } {
  const [outer, K, inner] = splitAt(q.dims, reduceAxis);
  const R = outer * inner;
  const nb = Math.ceil(K / block);
  let codes: Uint8Array;
  let perRow: { scales: Float32Array; zeros: Uint8Array; groups: number; group: number };
  if (q.layout === 'rows') {
    if (q.axis !== reduceAxis) throw new Error('rows layout along another axis');
    codes = q.codes;
    perRow = { scales: q.scales, zeros: q.zeros, groups: Math.ceil(K / q.group), group: q.group };
  } else {
    codes = toRows(q.codes, outer, K, inner, u8);
    if (q.axis === -1) perRow = { scales: new Float32Array(R).fill(q.scales[0]), zeros: new Uint8Array(R).fill(q.zeros[0]), groups: 1, group: K };
    else if (q.dims.length === 2 && q.axis === 1 - reduceAxis) perRow = { scales: q.scales, zeros: q.zeros, groups: 1, group: K };
    else throw new Error(`per-channel axis ${q.axis} is not the rows of reduce axis ${reduceAxis}`);
  }
  if (perRow.groups === nb && (perRow.group === block || nb === 1)) return { codes, scales: perRow.scales, zeros: perRow.zeros, R, K };
  if (perRow.group < K && perRow.group % block !== 0) throw new Error(`block ${block} does not divide group ${perRow.group}`);
  const scales = new Float32Array(R * nb);
  const zeros = new Uint8Array(R * nb);
  for (let r = 0; r < R; r++) {
    for (let b = 0; b < nb; b++) {
      const g = Math.min(Math.floor((b * block) / perRow.group), perRow.groups - 1);
      scales[r * nb + b] = perRow.scales[r * perRow.groups + g];
      zeros[r * nb + b] = perRow.zeros[r * perRow.groups + g];
    }
  }
  return { codes, scales, zeros, R, K };
}

/**
 * Per-channel (or per-tensor) view along `channelAxis` of a 2-D weight in its own layout: what
 * DequantizeLinear with `axis`, MatMulInteger and ConvInteger read. Undefined for block-wise weights.
 */
export function channelView(q: WeightQuant, channelAxis: number): { codes: Uint8Array; scales: Float32Array; zeros: Uint8Array; perTensor: boolean } | undefined {
  if (q.layout === 'axis') {
    if (q.axis !== -1 && q.axis !== channelAxis) return undefined;
    return { codes: q.codes, scales: q.scales, zeros: q.zeros, perTensor: q.axis === -1 };
  }
  const K = q.dims[q.axis];
  if (q.group < K || q.dims.length !== 2 || q.axis !== 1 - channelAxis) return undefined;
  const perTensor = q.scales.every((s) => s === q.scales[0]) && q.zeros.every((z) => z === q.zeros[0]);
  return {
    codes: originalCodes(q),
    scales: perTensor ? q.scales.subarray(0, 1) : q.scales,
    zeros: perTensor ? q.zeros.subarray(0, 1) : q.zeros,
    perTensor,
  };
}

/** Block scales in the weight's layout with dims[axis] → ceil(K/group): DequantizeLinear's block form. */
export function blockedParams(q: WeightQuant): { scales: Float32Array; zeros: Uint8Array; dims: number[] } {
  const [outer, K, inner] = splitAt(q.dims, q.axis);
  const nb = Math.ceil(K / q.group);
  const dims = q.dims.slice();
  dims[q.axis] = nb;
  return { scales: fromRows(q.scales, outer, nb, inner, f32), zeros: fromRows(q.zeros, outer, nb, inner, u8), dims };
}

/** Codes of a 2-D [R, C] weight transposed to [C, R] (for Gemm transB=1 → MatMulInteger's [K, N]). */
export function transposeCodes(codes: Uint8Array, R: number, C: number): Uint8Array {
  return transpose2d(codes, R, C, new Uint8Array(codes.length));
}
