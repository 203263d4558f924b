/**
 * Bit-exact float32 ↔ float16 / bfloat16 conversions, done on the integer bit patterns only
 * (typed-array views), so no value ever passes through a JS double and gets rounded twice or has
 * its NaN payload changed.
 *
 *   float32:  s eeeeeeee mmmmmmmmmmmmmmmmmmmmmmm   bias 127, 23 mantissa bits
 *   float16:  s eeeee    mmmmmmmmmm                bias  15, 10 mantissa bits, max 65504
 *   bfloat16: s eeeeeeee mmmmmmm                   the top 16 bits of a float32
 *
 * Rounding is IEEE round-to-nearest-even, bit-identical to onnxruntime's Cast. NaNs: float32 →
 * float16 keeps the sign and the top 10 payload bits and sets the quiet bit (as ORT / x86 F16C do);
 * float16 → float32 keeps the payload exactly (ORT's vector path quiets signalling NaNs instead);
 * float32 → bfloat16 keeps sign and top payload bits, quiet bit set (ORT gives ±0x7fc0).
 */

export type OverflowMode = 'inf' | 'clamp';

// Scratch views for the scalar functions.
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** View any float32 array's bytes as uint32 (same buffer, no copy). */
function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/**
 * float32 bit pattern → float16 bit pattern. `big` is what finite values ≥ 65520 in magnitude
 * become (0x7c00 = Inf, or 0x7bff = 65504 when clamping).
 */
function f32BitsToF16(x: number, big: number): number {
  const sign = (x >>> 16) & 0x8000;
  const a = x & 0x7fffffff; // |x|
  if (a >= 0x38800000) {
    // |x| ≥ 2^-14: a normal float16, unless it overflows.
    if (a >= 0x477ff000) {
      // ≥ 65520 = 65504 + half an ulp: rounds past the largest float16.
      if (a <= 0x7f800000) return sign | (a === 0x7f800000 ? 0x7c00 : big);
      return sign | 0x7e00 | ((a >>> 13) & 0x3ff); // NaN: quiet bit + top 10 payload bits (as vcvtps2ph)
    }
    // Re-bias the exponent (127 → 15: subtract 112 << 23) and drop 13 mantissa bits, rounding to
    // nearest even: add 0xfff plus the lowest kept bit. A carry out of the mantissa correctly bumps
    // the exponent (0x7bff + carry = 0x7c00 cannot happen: that range was caught above).
    return sign | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13);
  }
  if (a > 0x33000000) {
    // 2^-25 < |x| < 2^-14: a float16 subnormal, value = m · 2^-24 with m in 1..1024.
    // With the implicit 1 restored, |x| = mant · 2^(e-150), so m = mant >> (126 - e), rounded.
    const e = a >>> 23;
    const mant = (a & 0x7fffff) | 0x800000;
    const shift = 126 - e; // 14..24
    const half = 1 << (shift - 1);
    return sign | ((mant + half - 1 + ((mant >>> shift) & 1)) >>> shift);
  }
  return sign; // |x| ≤ 2^-25 (half the smallest subnormal, ties to even 0): ±0
}

/**
 * One float16 bit pattern for `x`. `x` is first stored as float32 (as a Float32Array would), so
 * this equals float32 → float16 Cast, not a direct double → float16 rounding.
 */
export function float32ToFloat16Bits(x: number, overflow: OverflowMode = 'inf'): number {
  f32[0] = x;
  return f32BitsToF16(u32[0], overflow === 'clamp' ? 0x7bff : 0x7c00);
}

/**
 * Converts float32 values to float16 bit patterns (round-to-nearest-even). Finite values beyond
 * ±65504 (from ±65520 on) become ±Inf, or ±65504 with overflow = 'clamp'; ±Inf and NaN stay.
 */
export function float32ArrayToFloat16(
  src: Float32Array,
  dst: Uint16Array = new Uint16Array(src.length),
  overflow: OverflowMode = 'inf',
): Uint16Array {
  if (dst.length < src.length) throw new RangeError(`dst holds ${dst.length} values, need ${src.length}`);
  const s = bitsOf(src);
  const big = overflow === 'clamp' ? 0x7bff : 0x7c00;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const x = s[i];
    const a = x & 0x7fffffff;
    // Fast path for the common case (normal, in range): inlined copy of f32BitsToF16's first branch.
    if (a >= 0x38800000 && a < 0x477ff000) {
      dst[i] = ((x >>> 16) & 0x8000) | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13);
    } else {
      dst[i] = f32BitsToF16(x, big);
    }
  }
  return dst;
}

// float16 → float32 is exact, so a 65536-entry table of float32 bit patterns answers every input.
let table: Uint32Array | undefined;

function f16Table(): Uint32Array {
  if (table) return table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const e = (h >>> 10) & 0x1f;
    let m = h & 0x3ff;
    if (e === 0x1f) {
      t[h] = sign | 0x7f800000 | (m << 13); // Inf / NaN, payload kept bit for bit
    } else if (e !== 0) {
      t[h] = sign | ((e + 112) << 23) | (m << 13); // normal: re-bias 15 → 127
    } else if (m === 0) {
      t[h] = sign; // ±0
    } else {
      // Subnormal m · 2^-24: shift m up until the implicit bit (0x400) is set, one exponent per step.
      let exp = 113; // 2^-14 = the float16 subnormal scale at m = 0x400, biased for float32
      while ((m & 0x400) === 0) {
        m <<= 1;
        exp--;
      }
      t[h] = sign | (exp << 23) | ((m & 0x3ff) << 13);
    }
  }
  return (table = t);
}

/** The float32 value of a float16 bit pattern (NaN payloads are not observable in a JS number). */
export function float16BitsToFloat32(h: number): number {
  u32[0] = f16Table()[h & 0xffff];
  return f32[0];
}

/** Converts float16 bit patterns to float32, exactly (NaN payloads included). */
export function float16ToFloat32Array(
  src: Uint16Array,
  dst: Float32Array = new Float32Array(src.length),
): Float32Array {
  if (dst.length < src.length) throw new RangeError(`dst holds ${dst.length} values, need ${src.length}`);
  const t = f16Table();
  const d = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) d[i] = t[src[i]];
  return dst;
}

/** float32 bit pattern → bfloat16 bit pattern. */
function f32BitsToBf16(x: number): number {
  // NaN: keep sign and top payload bits, force the quiet bit so a payload in the low bits only
  // cannot turn into Inf.
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x0040;
  // Round the low 16 bits away, to nearest even. Overflow carries into the exponent and yields
  // ±Inf by itself (0x7f7fffff → 0x7f80). x + 0x8000 < 2^32 for every non-NaN x, so no wrap.
  return (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
}

/** One bfloat16 bit pattern for `x` (stored as float32 first, like float32ToFloat16Bits). */
export function float32ToBfloat16Bits(x: number): number {
  f32[0] = x;
  return f32BitsToBf16(u32[0]);
}

/** Converts float32 values to bfloat16 bit patterns (round-to-nearest-even, NaN stays quiet NaN). */
export function float32ArrayToBfloat16(
  src: Float32Array,
  dst: Uint16Array = new Uint16Array(src.length),
): Uint16Array {
  if (dst.length < src.length) throw new RangeError(`dst holds ${dst.length} values, need ${src.length}`);
  const s = bitsOf(src);
  const n = s.length;
  for (let i = 0; i < n; i++) dst[i] = f32BitsToBf16(s[i]);
  return dst;
}

/** The float32 value of a bfloat16 bit pattern. */
export function bfloat16BitsToFloat32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

/** Converts bfloat16 bit patterns to float32, exactly: the pattern becomes the top 16 bits. */
export function bfloat16ToFloat32Array(
  src: Uint16Array,
  dst: Float32Array = new Float32Array(src.length),
): Float32Array {
  if (dst.length < src.length) throw new RangeError(`dst holds ${dst.length} values, need ${src.length}`);
  const d = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) d[i] = src[i] << 16;
  return dst;
}
