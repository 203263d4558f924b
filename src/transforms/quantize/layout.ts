/**
 * Moving weights between their ONNX layout and the "rows" layout block-wise quantization and GPTQ
 * work in, and packing codes into the byte layouts of the ops that read them.
 *
 * Rows layout of a tensor along axis a: the tensor seen as [outer, K, inner] (K = dims[a]) becomes
 * [outer·inner, K], row (o, i) holding the K values x[o, :, i] contiguously. For MatMul B [K, N]
 * along axis 0 that is Bᵀ [N, K]: one row per output column, K along the row, as MatMulNBits and
 * GPTQ want it.
 */
import type { Quantized } from './rtn.js';

type Arr = Float32Array | Float64Array | Uint8Array;

/** outer, K, inner of dims around `axis`. */
export function splitAt(dims: readonly number[], axis: number): [number, number, number] {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= dims[i];
  for (let i = axis + 1; i < dims.length; i++) inner *= dims[i];
  return [outer, dims[axis], inner];
}

/** dst[c·R + r] = src[r·C + c]: a [R, C] → [C, R] transpose in 32×32 tiles. */
export function transpose2d<T extends Arr>(src: T, R: number, C: number, dst: T, srcOffset = 0, dstOffset = 0): T {
  const T = 32;
  for (let r0 = 0; r0 < R; r0 += T) {
    const r1 = Math.min(r0 + T, R);
    for (let c0 = 0; c0 < C; c0 += T) {
      const c1 = Math.min(c0 + T, C);
      for (let r = r0; r < r1; r++) {
        const s = srcOffset + r * C;
        for (let c = c0; c < c1; c++) dst[dstOffset + c * R + r] = src[s + c];
      }
    }
  }
  return dst;
}

/** [outer, K, inner] → rows [outer·inner, K]. */
export function toRows<T extends Arr>(x: T, outer: number, K: number, inner: number, make: (n: number) => T): T {
  if (inner === 1) return x;
  const out = make(x.length);
  for (let o = 0; o < outer; o++) transpose2d(x, K, inner, out, o * K * inner, o * K * inner);
  return out;
}

/** Inverse of toRows: rows [outer·inner, K] → [outer, K, inner]. */
export function fromRows<T extends Arr>(rows: T, outer: number, K: number, inner: number, make: (n: number) => T): T {
  if (inner === 1) return rows;
  const out = make(rows.length);
  for (let o = 0; o < outer; o++) transpose2d(rows, inner, K, out, o * K * inner, o * K * inner);
  return out;
}

/**
 * ONNX INT4 / UINT4 packing of unsigned codes: element 2j in the low nibble of byte j, 2j+1 in the
 * high nibble. A signed (INT4) nibble is code − 8 in two's complement, which is code XOR 8.
 */
export function packNibbles(codes: Uint8Array, signed: boolean): Uint8Array {
  const n = codes.length;
  const out = new Uint8Array((n + 1) >>> 1);
  const flip = signed ? 0x88 : 0;
  let i = 0;
  for (let j = 0; j + 1 < n; i += 2, j += 2) out[i >>> 1] = (codes[j] | (codes[j + 1] << 4)) ^ flip;
  if (n & 1) out[n >>> 1] = (codes[n - 1] ^ (flip & 0xf)) & 0xf;
  return out;
}

/**
 * Unsigned 8-bit codes as the bytes of an INT8 tensor (code − 128) or a UINT8 one. `inPlace`: the codes
 * are the caller's to overwrite (no second array: on a virtual machine the fresh memory of a second
 * copy of a model's codes cost more than the loop).
 */
export function bytes8(codes: Uint8Array, signed: boolean, inPlace = false): Uint8Array {
  if (!signed) return codes;
  const n = codes.length;
  const out = inPlace ? codes : new Uint8Array(n);
  // Four bytes at a time when the codes are 4-aligned (they are: fresh Uint8Arrays).
  const words = codes.byteOffset % 4 === 0 ? n >>> 2 : 0;
  if (words) {
    const src = new Uint32Array(codes.buffer, codes.byteOffset, words);
    const dst = new Uint32Array(out.buffer, out.byteOffset, words);
    for (let i = 0; i < words; i++) dst[i] = src[i] ^ 0x80808080;
  }
  for (let i = words * 4; i < n; i++) out[i] = codes[i] ^ 0x80;
  return out;
}

export interface MatMulNBitsWeights {
  /** uint8 [N, nBlocks, block·bits/8]: per output column n, K codes in blocks; 4-bit: even k low nibble. */
  B: Uint8Array;
  /** [N · nBlocks], block b of column n at n·nBlocks + b. */
  scales: Float32Array;
  /** 4-bit: uint8 [N · ceil(nBlocks/2)], block b of column n in byte n·ceil(nBlocks/2) + b/2, even b low
   *  nibble; 8-bit: uint8 [N · nBlocks]. Absent when every zero point is the default 2^(bits−1). */
  zeroPoints?: Uint8Array;
  nBlocks: number;
}

/**
 * MatMulNBits operands from codes in rows layout [N, K] quantized in groups of `block` along K
 * (q.scales / q.zeros are [N, ceil(K/block)]). K is padded to a whole number of blocks with the
 * block's zero point (dequantizes to 0).
 */
export function matMulNBitsWeights(q: Quantized, N: number, K: number, block: number): MatMulNBitsWeights {
  const nb = Math.ceil(K / block);
  const bits = q.bits;
  const zeros = q.zeros;
  // 4-bit codes already two per byte with K whole blocks: B is those bytes (no padding to add).
  const B = bits === 4 && q.nibbles && K % block === 0 && q.nibbles.length * 2 === N * K ? q.nibbles : blocksOf(q, N, K, block);
  const mid = 1 << (bits - 1);
  let zeroPoints: Uint8Array | undefined;
  if (zeros.some((z) => z !== mid)) {
    if (bits === 8) zeroPoints = zeros;
    else {
      const per = (nb + 1) >>> 1;
      zeroPoints = new Uint8Array(N * per);
      for (let n = 0; n < N; n++) {
        for (let b = 0; b < nb; b++) zeroPoints[n * per + (b >>> 1)] |= zeros[n * nb + b] << ((b & 1) << 2);
      }
    }
  }
  return { B, scales: q.scales, zeroPoints, nBlocks: nb };
}

/** B of MatMulNBits from one code per byte: pairs of codes (4-bit) or the codes, padded per block. */
function blocksOf(q: Quantized, N: number, K: number, block: number): Uint8Array {
  const nb = Math.ceil(K / block);
  const bits = q.bits;
  const blob = (block * bits) / 8;
  const B = new Uint8Array(N * nb * blob);
  const { codes, zeros } = q;
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nb; b++) {
      const z = zeros[n * nb + b];
      const k0 = b * block;
      const kEnd = Math.min(k0 + block, K);
      const src = n * K;
      const dst = (n * nb + b) * blob;
      if (bits === 8) {
        B.set(codes.subarray(src + k0, src + kEnd), dst);
        for (let k = kEnd; k < k0 + block; k++) B[dst + k - k0] = z;
      } else if (kEnd === k0 + block) {
        // A whole block: pairs of codes, no padding.
        for (let j = 0, at = src + k0; j < blob; j++, at += 2) B[dst + j] = codes[at] | (codes[at + 1] << 4);
      } else {
        for (let k = k0; k < k0 + block; k += 2) {
          const lo = k < kEnd ? codes[src + k] : z;
          const hi = k + 1 < kEnd ? codes[src + k + 1] : z;
          B[dst + ((k - k0) >>> 1)] = lo | (hi << 4);
        }
      }
    }
  }
  return B;
}
