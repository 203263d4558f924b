/**
 * Round-to-nearest quantization kernels. Every result stores UNSIGNED codes with an unsigned zero
 * point, value ≈ (code − zero) · scale, whatever the output type is: a signed tensor stores
 * code − 2^(bits−1) and zero − 2^(bits−1), and 4-bit codes are exactly what MatMulNBits wants.
 *
 * Scales and zero points, per group of values with minimum lo and maximum hi:
 * - symmetric 8-bit: scale = max|x| / 127, zero = 128, codes 1..255 (ONNX Runtime's int8 range −127..127)
 * - symmetric 4-bit: the value of largest magnitude m (with its sign) maps to −8: scale = m / −8,
 *   zero = 8, codes 0..15. The scale is negative when m > 0; that uses all 16 levels (ONNX Runtime's
 *   MatMulNBits quantizer does the same) and dequantization does not care about the sign.
 * - asymmetric: the range is widened to include 0, scale = (hi − lo) / (2^bits − 1),
 *   zero = round(−lo / scale) so 0 is exact.
 * A group of zeros gets scale 1.
 *
 * The kernels here (`…Js`) are the scalar reference: callers use rtn-simd.ts's quantizeAxis,
 * quantizeBlocks and quantizeBlocksColumns, which run the same computation on WebAssembly SIMD (rtn.wat)
 * and fall back to these where WebAssembly SIMD is missing or ONNX_COMPRESS_SIMD=0.
 */

export type Bits = 4 | 8;

/** Codes, scales and zero points of one tensor, plus the error they make. */
export interface Quantized {
  bits: Bits;
  symmetric: boolean;
  /** Unsigned codes 0..2^bits−1, one byte each, in the layout described by the producer. */
  codes: Uint8Array;
  /** 4-bit codes two per byte (code 2i in the low nibble of byte i), when the producer was asked to
   *  pack them; then `codes` is unpacked from these on first read. */
  nibbles?: Uint8Array;
  scales: Float32Array;
  zeros: Uint8Array;
  /** Σ(x − x̂)² and Σx², for the relative RMS error. */
  sqErr: number;
  sqRef: number;
}

export function relativeRms(q: { sqErr: number; sqRef: number }): number {
  return q.sqRef > 0 ? Math.sqrt(q.sqErr / q.sqRef) : 0;
}

/** Scale and zero point of a group with minimum `lo` and maximum `hi`; writes into out[0..1]. */
export function groupParams(lo: number, hi: number, bits: Bits, symmetric: boolean, out: Float64Array): void {
  const qmax = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  if (symmetric) {
    if (bits === 8) {
      const m = Math.max(-lo, hi);
      out[0] = m > 0 ? Math.fround(m / 127) : 1;
    } else {
      const m = -lo > hi ? lo : hi;
      out[0] = m !== 0 ? Math.fround(m / -mid) : 1;
    }
    out[1] = mid;
    return;
  }
  if (lo > 0) lo = 0;
  if (hi < 0) hi = 0;
  const scale = Math.fround((hi - lo) / qmax);
  if (!(scale > 0)) {
    out[0] = 1;
    out[1] = 0;
    return;
  }
  let z = Math.round(-lo / scale);
  if (z < 0) z = 0;
  else if (z > qmax) z = qmax;
  out[0] = scale;
  out[1] = z;
}

/**
 * Quantizes along one axis of a row-major tensor viewed as [outer, C, inner]: one scale and zero per
 * index of the middle axis (per-channel), or per tensor with C = 1 (then outer = 1 and inner = size).
 * Codes keep the input's layout. Two passes: min/max, then quantize + error.
 *
 * Rounding: floor(t + 0.5) with t = x/scale + zero, computed as (t + 0.5) | 0; that truncates toward 0
 * for t < −0.5, but such values clamp to 0 anyway, so the result is round-half-up as with Math.round.
 */
export function quantizeAxisJs(x: Float32Array, outer: number, C: number, inner: number, bits: Bits, symmetric: boolean): Quantized {
  const lo = new Float32Array(C).fill(Infinity);
  const hi = new Float32Array(C).fill(-Infinity);
  if (inner === 1) {
    // [outer, C]: walk rows, keep per-column extremes (MatMul B [K, N], channel axis 1).
    for (let o = 0, i = 0; o < outer; o++) {
      for (let c = 0; c < C; c++, i++) {
        const v = x[i];
        if (v < lo[c]) lo[c] = v;
        if (v > hi[c]) hi[c] = v;
      }
    }
  } else {
    for (let o = 0, i = 0; o < outer; o++) {
      for (let c = 0; c < C; c++) {
        let l = lo[c];
        let h = hi[c];
        for (const end = i + inner; i < end; i++) {
          const v = x[i];
          if (v < l) l = v;
          if (v > h) h = v;
        }
        lo[c] = l;
        hi[c] = h;
      }
    }
  }
  const scales = new Float32Array(C);
  const zeros = new Uint8Array(C);
  const inv = new Float32Array(C);
  const zf = new Float32Array(C);
  const p = new Float64Array(2);
  for (let c = 0; c < C; c++) {
    groupParams(lo[c] === Infinity ? 0 : lo[c], hi[c] === -Infinity ? 0 : hi[c], bits, symmetric, p);
    scales[c] = p[0];
    zeros[c] = p[1];
    inv[c] = 1 / scales[c];
    zf[c] = p[1] + 0.5;
  }
  const qmax = (1 << bits) - 1;
  const codes = new Uint8Array(x.length);
  let sqErr = 0;
  let sqRef = 0;
  if (inner === 1) {
    for (let o = 0, i = 0; o < outer; o++) {
      for (let c = 0; c < C; c++, i++) {
        const v = x[i];
        let q = (v * inv[c] + zf[c]) | 0;
        if (q < 0) q = 0;
        else if (q > qmax) q = qmax;
        codes[i] = q;
        const d = v - (q - zeros[c]) * scales[c];
        sqErr += d * d;
        sqRef += v * v;
      }
    }
  } else {
    for (let o = 0, i = 0; o < outer; o++) {
      for (let c = 0; c < C; c++) {
        const s = scales[c];
        const r = inv[c];
        const z = zeros[c];
        const zh = zf[c];
        for (const end = i + inner; i < end; i++) {
          const v = x[i];
          let q = (v * r + zh) | 0;
          if (q < 0) q = 0;
          else if (q > qmax) q = qmax;
          codes[i] = q;
          const d = v - (q - z) * s;
          sqErr += d * d;
          sqRef += v * v;
        }
      }
    }
  }
  return { bits, symmetric, codes, scales, zeros, sqErr, sqRef };
}

/**
 * Block-wise quantization of a matrix held as rows [R, K] (K contiguous): groups of `block`
 * consecutive values of a row share a scale; the last group of a row may be shorter.
 * Scales and zeros are [R, ceil(K / block)].
 */
export function quantizeBlocksJs(rows: Float32Array, R: number, K: number, block: number, bits: Bits, symmetric: boolean): Quantized {
  const nb = Math.ceil(K / block);
  const scales = new Float32Array(R * nb);
  const zeros = new Uint8Array(R * nb);
  const codes = new Uint8Array(R * K);
  const qmax = (1 << bits) - 1;
  const p = new Float64Array(2);
  let sqErr = 0;
  let sqRef = 0;
  for (let r = 0; r < R; r++) {
    const base = r * K;
    for (let b = 0; b < nb; b++) {
      const start = base + b * block;
      const end = Math.min(start + block, base + K);
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = start; i < end; i++) {
        const v = rows[i];
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      groupParams(lo, hi, bits, symmetric, p);
      const s = Math.fround(p[0]);
      const z = p[1];
      scales[r * nb + b] = s;
      zeros[r * nb + b] = z;
      const inv = Math.fround(1 / s);
      const zh = z + 0.5;
      for (let i = start; i < end; i++) {
        const v = rows[i];
        let q = (v * inv + zh) | 0;
        if (q < 0) q = 0;
        else if (q > qmax) q = qmax;
        codes[i] = q;
        const d = v - (q - z) * s;
        sqErr += d * d;
        sqRef += v * v;
      }
    }
  }
  return { bits, symmetric, codes, scales, zeros, sqErr, sqRef };
}

/**
 * quantizeBlocks of the transpose: `x` is [K, N] row-major (MatMul's B), blocks run down each column,
 * and codes come out in rows layout [N, K] (scales/zeros [N, ceil(K / block)]) without transposing the
 * floats first. Block by block, column by column: a column's block is read twice (min/max, then codes)
 * from cache lines the next columns read too, and its codes are written contiguously (writing them
 * row by row, K bytes apart, was 15 % slower).
 */
export function quantizeBlocksColumnsJs(x: Float32Array, K: number, N: number, block: number, bits: Bits, symmetric: boolean): Quantized {
  const nb = Math.ceil(K / block);
  const scales = new Float32Array(N * nb);
  const zeros = new Uint8Array(N * nb);
  const codes = new Uint8Array(N * K);
  const qmax = (1 << bits) - 1;
  const p = new Float64Array(2);
  let sqErr = 0;
  let sqRef = 0;
  for (let b = 0; b < nb; b++) {
    const k0 = b * block;
    const k1 = Math.min(k0 + block, K);
    for (let n = 0; n < N; n++) {
      let lo = x[k0 * N + n];
      let hi = lo;
      for (let i = (k0 + 1) * N + n, end = k1 * N; i < end; i += N) {
        const v = x[i];
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
      }
      groupParams(lo, hi, bits, symmetric, p);
      const s = p[0];
      const z = p[1];
      scales[n * nb + b] = s;
      zeros[n * nb + b] = z;
      // float32 like the stored scale, as every quantizer here computes codes
      const inv = Math.fround(1 / s);
      const zh = Math.fround(z + 0.5);
      for (let i = k0 * N + n, at = n * K + k0, end = n * K + k1; at < end; i += N, at++) {
        const v = x[i];
        let q = (v * inv + zh) | 0;
        if (q < 0) q = 0;
        else if (q > qmax) q = qmax;
        codes[at] = q;
        const d = v - (q - z) * s;
        sqErr += d * d;
        sqRef += v * v;
      }
    }
  }
  return { bits, symmetric, codes, scales, zeros, sqErr, sqRef };
}
