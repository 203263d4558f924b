import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { CompressError } from '../src/errors.js';
import { DataType, bitsPerElement, byteLength, dataTypeFromName, dataTypeName, isDataType } from '../src/onnx/dtypes.js';
import {
  bfloat16BitsToFloat32,
  bfloat16ToFloat32Array,
  float16BitsToFloat32,
  float16ToFloat32Array,
  float32ArrayToBfloat16,
  float32ArrayToFloat16,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from '../src/onnx/float16.js';
import { packInt4, unpackInt4 } from '../src/onnx/int4.js';

// ---------------------------------------------------------------------------------------------
// A minimal protobuf writer, just enough to encode a model made of a chain of Cast nodes, so ORT's
// Cast can serve as the reference implementation. Fields are [number, varint | string | bytes].
type Field = [number, number | string | Uint8Array];
const utf8 = new TextEncoder();

function varint(n: number, out: number[]): void {
  for (; n > 0x7f; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80);
  out.push(n);
}

function msg(fields: Field[]): Uint8Array {
  const out: number[] = [];
  for (const [num, v] of fields) {
    if (typeof v === 'number') {
      varint(num << 3, out); // wire type 0: varint
      varint(v, out);
    } else {
      const bytes = typeof v === 'string' ? utf8.encode(v) : v;
      varint((num << 3) | 2, out); // wire type 2: length-delimited
      varint(bytes.length, out);
      out.push(...bytes);
    }
  }
  return Uint8Array.from(out);
}

/** ValueInfoProto{name, type: TypeProto{tensor_type{elem_type, shape{dim{dim_param "n"}}}}} */
function valueInfo(name: string, elemType: number): Uint8Array {
  const shape = msg([[1, msg([[2, 'n']])]]);
  return msg([[1, name], [2, msg([[1, msg([[1, elemType], [2, shape]])]])]]);
}

/** ModelProto for x:inType → Cast(to=tos[0]) → Cast(to=tos[1]) → ... → y. */
function castModel(inType: number, tos: number[]): Uint8Array {
  const name = (i: number) => (i === 0 ? 'x' : i === tos.length ? 'y' : `t${i}`);
  const nodes = tos.map((to, i): Field => {
    const attr = msg([[1, 'to'], [3, to], [20, 2]]); // AttributeProto{name, i, type=INT}
    return [1, msg([[1, name(i)], [2, name(i + 1)], [4, 'Cast'], [5, attr]])];
  });
  const graph = msg([...nodes, [2, 'g'], [11, valueInfo('x', inType)], [12, valueInfo('y', tos.at(-1)!)]]);
  return msg([[1, 8], [8, msg([[1, ''], [2, 17]])], [7, graph]]); // ir_version 8, opset 17
}

// ---------------------------------------------------------------------------------------------
let toF16: ort.InferenceSession;
let fromF16: ort.InferenceSession;
let viaBf16: ort.InferenceSession;

beforeAll(async () => {
  toF16 = await ort.InferenceSession.create(castModel(DataType.FLOAT, [DataType.FLOAT16]));
  fromF16 = await ort.InferenceSession.create(castModel(DataType.FLOAT16, [DataType.FLOAT]));
  // onnxruntime-node cannot return bfloat16 tensors, so cast back to float: bf16 → f32 is exact,
  // and the bf16 bits are the top 16 bits of the result.
  viaBf16 = await ort.InferenceSession.create(castModel(DataType.FLOAT, [DataType.BFLOAT16, DataType.FLOAT]));
});

afterAll(async () => {
  await Promise.all([toF16?.release(), fromF16?.release(), viaBf16?.release()]);
});

async function ortToF16(bits: Uint32Array): Promise<Uint16Array> {
  const x = new ort.Tensor('float32', new Float32Array(bits.buffer, bits.byteOffset, bits.length), [bits.length]);
  return (await toF16.run({ x })).y!.data as Uint16Array;
}
async function ortFromF16(h: Uint16Array): Promise<Uint32Array> {
  const y = (await fromF16.run({ x: new ort.Tensor('float16', h, [h.length]) })).y!.data as Float32Array;
  return new Uint32Array(y.buffer, y.byteOffset, y.length);
}
async function ortViaBf16(bits: Uint32Array): Promise<Uint32Array> {
  const x = new ort.Tensor('float32', new Float32Array(bits.buffer, bits.byteOffset, bits.length), [bits.length]);
  const y = (await viaBf16.run({ x })).y!.data as Float32Array;
  return new Uint32Array(y.buffer, y.byteOffset, y.length);
}

const hex = (v: number, w = 8) => '0x' + (v >>> 0).toString(16).padStart(w, '0');
const f32NaN = (b: number) => (b & 0x7fffffff) > 0x7f800000;
const f16NaN = (h: number) => (h & 0x7fff) > 0x7c00;
const bf16NaN = (h: number) => (h & 0x7fff) > 0x7f80;
const bitsOfF32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);
const f32Bits = (x: number) => bitsOfF32(Float32Array.of(x))[0];

/** Deterministic xorshift32, so failures reproduce. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>>= 0);
  };
}

/**
 * Compares ours with ORT's output element by element. Non-NaN inputs must match bit for bit; for
 * NaN inputs both outputs must be NaNs with the same sign (payload handling is CPU-specific in ORT;
 * exact matches are counted and logged). Returns the first few mismatches, formatted.
 */
function diff(
  label: string,
  input: ArrayLike<number>,
  ours: ArrayLike<number>,
  ref: ArrayLike<number>,
  inNaN: (x: number) => boolean,
  outNaN: (y: number) => boolean,
  signBit: number,
): string[] {
  const bad: string[] = [];
  let nans = 0;
  let nanExact = 0;
  for (let i = 0; i < input.length; i++) {
    const o = ours[i];
    const r = ref[i];
    if (inNaN(input[i])) {
      nans++;
      if (o === r) nanExact++;
      else if (!outNaN(o) || !outNaN(r) || (o & signBit) !== (r & signBit)) bad.push(`NaN ${hex(input[i])}: ours ${hex(o)} ORT ${hex(r)}`);
    } else if (o !== r) {
      bad.push(`${hex(input[i])}: ours ${hex(o)} ORT ${hex(r)}`);
    }
    if (bad.length >= 10) break;
  }
  console.log(`${label}: ${input.length} values, ${nans} NaN inputs (${nanExact} with ORT's exact NaN bits)`);
  return bad;
}

function speed(label: string, n: number, fn: () => void): void {
  fn(); // warm up
  const times: number[] = [];
  for (let k = 0; k < 3; k++) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  const ms = times.sort((a, b) => a - b)[1];
  console.log(`${label}: ${(n / ms / 1e3).toFixed(0)} M values/s (${n} values, median ${ms.toFixed(1)} ms)`);
}

// ---------------------------------------------------------------------------------------------
/** The exact value of a finite float16 pattern 0..0x7c00 (0x7c00 gives 65536, one ulp past max). */
function f16Value(h: number): number {
  const e = h >>> 10;
  const m = h & 0x3ff;
  return e === 0 ? m * 2 ** -24 : (1024 + m) * 2 ** (e - 25);
}

/** Inputs for float32 → float16: every float16's neighbourhood, random patterns, and edge cases. */
function f16Inputs(): Uint32Array {
  const next = rng(0x5eed);
  const out: number[] = [];
  const tmp = new Float32Array(1);
  const bits = bitsOfF32(tmp);
  for (let h = 0; h < 0x7c00; h++) {
    const lo = f16Value(h);
    const hi = f16Value(h + 1);
    tmp[0] = lo;
    const exact = bits[0];
    tmp[0] = (lo + hi) / 2; // exact in float32: needs 12 significant bits
    const mid = bits[0];
    out.push(exact, mid - 1, mid, mid + 1);
    if (exact > 0) out.push(exact - 1, exact + 1); // ±1 float32 ulp around the float16 itself
    for (let k = 0; k < 3; k++) {
      tmp[0] = lo + ((next() / 2 ** 32) * (hi - lo));
      out.push(bits[0]);
    }
  }
  const n = out.length;
  for (let i = 0; i < n; i++) out.push(out[i] | 0x80000000); // the negatives
  for (let i = 0; i < 2_000_000; i++) out.push(next()); // random bit patterns
  const edges = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0x7fbfffff,
    0xffffffff, 0x7fffffff, 0x7f7fffff, 0xff7fffff, 0x00000001, 0x007fffff, 0x00800000, 0x33000000, 0x33000001,
    0x32ffffff, 0x387fe000, 0x38800000, f32Bits(65504), f32Bits(65519.99), f32Bits(65520), f32Bits(1e6)];
  for (const e of edges) out.push(e, (e ^ 0x80000000) >>> 0);
  return Uint32Array.from(out);
}

describe('float32 → float16', () => {
  it('matches ORT Cast(to=FLOAT16) bit for bit', async () => {
    const input = f16Inputs();
    const ours = float32ArrayToFloat16(new Float32Array(input.buffer));
    const ref = await ortToF16(input);
    expect(diff('f32→f16 vs ORT', input, ours, ref, f32NaN, f16NaN, 0x8000)).toEqual([]);
  });

  it('handles the documented edge cases', () => {
    const cases: Array<[number, number]> = [
      [0, 0x0000],
      [-0, 0x8000],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65519.99, 0x7bff],
      [65520, 0x7c00],
      [-65520, 0xfc00],
      [1e30, 0x7c00],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -25, 0x0000], // half of it: tie to even → 0
      [1.5 * 2 ** -24, 0x0002], // tie → even (2)
      [2.5 * 2 ** -24, 0x0002], // tie → even (2)
      [1023 * 2 ** -24, 0x03ff], // largest subnormal
      [2 ** -14, 0x0400], // smallest normal
      [1 + 2 ** -11, 0x3c00], // tie → even
      [1 + 3 * 2 ** -11, 0x3c02], // tie → even (up)
      [1e-10, 0x0000],
      [-1e-10, 0x8000],
    ];
    for (const [x, h] of cases) expect(hex(float32ToFloat16Bits(x), 4), `${x}`).toBe(hex(h, 4));
    // NaN: sign and the top 10 payload bits kept, quiet bit set (x86 F16C / ORT behaviour).
    const nans: Array<[number, number]> = [[0x7fc00000, 0x7e00], [0xffc00000, 0xfe00], [0x7f800001, 0x7e00],
      [0x7fa00000, 0x7f00], [0xffffffff, 0xffff], [0x7f802000, 0x7e01]];
    const out = float32ArrayToFloat16(new Float32Array(Uint32Array.from(nans.map((n) => n[0])).buffer));
    expect(Array.from(out, (h) => hex(h, 4))).toEqual(nans.map((n) => hex(n[1], 4)));
  });

  it("clamps overflow to ±65504 with overflow='clamp' and changes nothing else", () => {
    const src = Float32Array.of(65519.99, 65520, -65520, 1e10, -3.4e38, Infinity, -Infinity, NaN, 1, -0);
    const h = float32ArrayToFloat16(src, undefined, 'clamp');
    expect(Array.from(h, (v) => hex(v, 4))).toEqual(
      ['0x7bff', '0x7bff', '0xfbff', '0x7bff', '0xfbff', '0x7c00', '0xfc00', '0x7e00', '0x3c00', '0x8000'],
    );
    expect(float32ToFloat16Bits(1e6, 'clamp')).toBe(0x7bff);
    const input = f16Inputs();
    const f = new Float32Array(input.buffer);
    const [clamped, inf] = [float32ArrayToFloat16(f, undefined, 'clamp'), float32ArrayToFloat16(f)];
    // Same results, except finite inputs that overflowed to ±Inf (0x7c00) now give ±65504 (0x7bff).
    const bad = input.findIndex((b, i) => {
      const overflowed = (inf[i] & 0x7fff) === 0x7c00 && (b & 0x7fffffff) !== 0x7f800000;
      return clamped[i] !== (overflowed ? inf[i] - 1 : inf[i]);
    });
    expect(bad).toBe(-1);
  });

  it('scalar, dst and subarray forms agree with the bulk form', () => {
    const next = rng(7);
    const bits = Uint32Array.from({ length: 10_000 }, next);
    const f = new Float32Array(bits.buffer);
    const bulk = float32ArrayToFloat16(f);
    expect(Uint16Array.from(f, (x) => float32ToFloat16Bits(x)).filter((_, i) => !f32NaN(bits[i]))).toEqual(
      bulk.filter((_, i) => !f32NaN(bits[i])),
    );
    const dst = new Uint16Array(10_010);
    expect(float32ArrayToFloat16(f.subarray(3), dst)).toBe(dst);
    expect(dst.subarray(0, 9_997)).toEqual(bulk.subarray(3));
    expect(() => float32ArrayToFloat16(f, new Uint16Array(5))).toThrow(RangeError);
  });

  it('is fast', () => {
    const next = rng(1);
    // Weight-like data: mostly normal-range values with a spread of exponents.
    const src = Float32Array.from({ length: 10_000_000 }, () => (next() / 2 ** 32 - 0.5) * 2 ** ((next() % 20) - 16));
    const dst = new Uint16Array(src.length);
    speed('float32ArrayToFloat16', src.length, () => float32ArrayToFloat16(src, dst));
    const h = new Uint16Array(dst);
    const back = new Float32Array(src.length);
    speed('float16ToFloat32Array', h.length, () => float16ToFloat32Array(h, back));
    speed('float32ArrayToBfloat16', src.length, () => float32ArrayToBfloat16(src, dst));
    speed('bfloat16ToFloat32Array', h.length, () => bfloat16ToFloat32Array(h, back));
  });
});

describe('float16 → float32', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);

  it('matches ORT Cast(to=FLOAT) for all 65536 patterns', async () => {
    const ours = bitsOfF32(float16ToFloat32Array(all));
    const ref = await ortFromF16(all);
    expect(diff('f16→f32 vs ORT', all, ours, ref, f16NaN, f32NaN, 0x80000000)).toEqual([]);
  });

  it('is exact, keeps NaN payloads, and round-trips through float32ArrayToFloat16', () => {
    const f = float16ToFloat32Array(all);
    const bits = bitsOfF32(f);
    expect(hex(bits[0x0001])).toBe(hex(f32Bits(2 ** -24)));
    expect(hex(bits[0x7bff])).toBe(hex(f32Bits(65504)));
    expect(hex(bits[0x7c01])).toBe('0x7f802000'); // signalling NaN stays signalling
    expect(hex(bits[0xfe00])).toBe('0xffc00000');
    const back = float32ArrayToFloat16(f);
    const bad: string[] = [];
    for (let h = 0; h < 65536; h++) {
      const sign = h & 0x8000 ? -1 : 1;
      if (!f16NaN(h) && (h & 0x7fff) < 0x7c00 && !Object.is(f[h], sign * f16Value(h & 0x7fff))) bad.push(`value ${hex(h, 4)}`);
      if (!f16NaN(h) && !Object.is(float16BitsToFloat32(h), f[h])) bad.push(`scalar ${hex(h, 4)}`);
      // Every pattern round-trips except signalling NaNs, which come back quiet.
      if (back[h] !== h && !(f16NaN(h) && back[h] === (h | 0x200))) bad.push(`round trip ${hex(h, 4)}`);
    }
    expect(bad).toEqual([]);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
  });
});

describe('bfloat16', () => {
  it('float32 → bfloat16 matches ORT Cast(to=BFLOAT16)', async () => {
    const next = rng(99);
    const list: number[] = [];
    for (let i = 0; i < 2_000_000; i++) list.push(next());
    // Ties and their neighbours: low 16 bits 0x8000 ± 1, with the kept bit even and odd.
    for (let i = 0; i < 100_000; i++) {
      const top = next() & 0xffff0000;
      list.push(top | 0x8000, top | 0x7fff, top | 0x8001, top, top | 0xffff);
    }
    list.push(0, 0x80000000, 0x7f800000, 0xff800000, 0x7f7fffff, 0xff7fffff, 0x7f7f8000, 0x7f7f7fff, 0x00000001,
      0x00008000, 0x00018000, 0x7fc00000, 0xffc00000, 0x7f800001, 0x7f808000, 0xffffffff, 0x7fa00000);
    const input = Uint32Array.from(list);
    const ours = float32ArrayToBfloat16(new Float32Array(input.buffer));
    const ref = Uint16Array.from(await ortViaBf16(input), (b) => b >>> 16);
    expect(diff('f32→bf16 vs ORT', input, ours, ref, f32NaN, bf16NaN, 0x8000)).toEqual([]);
    // NaNs stay quiet NaNs with sign and top payload; overflow rounds to Inf.
    const spot = float32ArrayToBfloat16(new Float32Array(Uint32Array.of(0x7f800001, 0xffa00000, 0x7f7fffff, 0xff7f8000).buffer));
    expect(Array.from(spot, (h) => hex(h, 4))).toEqual(['0x7fc0', '0xffe0', '0x7f80', '0xff80']);
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(-Infinity)).toBe(0xff80);
  });

  it('bfloat16 → float32 matches ORT for all 65536 patterns', async () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const ours = bitsOfF32(bfloat16ToFloat32Array(all));
    expect(ours).toEqual(Uint32Array.from(all, (h) => h * 0x10000));
    // Feeding the exact float32 of each pattern through Cast(BFLOAT16)→Cast(FLOAT) must change nothing.
    const ref = await ortViaBf16(new Uint32Array(ours));
    expect(diff('bf16→f32 vs ORT', ours, ours, ref, f32NaN, f32NaN, 0x80000000)).toEqual([]);
    expect(Object.is(bfloat16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(bfloat16BitsToFloat32(0x3fc0)).toBe(1.5);
    expect(bfloat16BitsToFloat32(0x7fc0)).toBeNaN();
  });
});

// ---------------------------------------------------------------------------------------------
describe('int4 packing', () => {
  it('puts the first element in the low nibble and pads odd counts', () => {
    expect(Array.from(packInt4([1, 2, 3], false))).toEqual([0x21, 0x03]);
    expect(Array.from(packInt4([1, 2, 3], true))).toEqual([0x21, 0x03]);
    expect(Array.from(packInt4([-1, -8], true))).toEqual([0x8f]);
    expect(Array.from(packInt4([15, 0, 7], false))).toEqual([0x0f, 0x07]);
    expect(packInt4([], true).length).toBe(0);
    expect(Array.from(unpackInt4(Uint8Array.of(0x21, 0x03), 3, false))).toEqual([1, 2, 3]);
    expect(Array.from(unpackInt4(Uint8Array.of(0x8f), 2, true))).toEqual([-1, -8]);
    expect(Array.from(unpackInt4(Uint8Array.of(0x8f), 2, false))).toEqual([15, 8]);
  });

  it('round-trips every value, signed and unsigned, odd and even counts', () => {
    const signed = Int8Array.from({ length: 16 }, (_, i) => i - 8);
    const unsigned = Int8Array.from({ length: 16 }, (_, i) => i);
    expect(unpackInt4(packInt4(signed, true), 16, true)).toEqual(signed);
    expect(unpackInt4(packInt4(unsigned, false), 16, false)).toEqual(unsigned);
    const next = rng(4);
    for (const n of [1, 2, 7, 1000, 1001]) {
      const s = Int8Array.from({ length: n }, () => (next() % 16) - 8);
      const u = Int8Array.from({ length: n }, () => next() % 16);
      const ps = packInt4(s, true);
      expect(ps.length).toBe(byteLength(DataType.INT4, n));
      expect(unpackInt4(ps, n, true)).toEqual(s);
      expect(unpackInt4(packInt4(u, false), n, false)).toEqual(u);
      if (n % 2) expect(ps[ps.length - 1] >> 4).toBe(0);
    }
  });

  it('rejects out-of-range values, naming the index', () => {
    expect(() => packInt4([0, 8], true)).toThrow(/index 1/);
    expect(() => packInt4([0, 1, -9], true)).toThrow(RangeError);
    expect(() => packInt4([-1], false)).toThrow(/index 0/);
    expect(() => packInt4([3, 16], false)).toThrow(/index 1/);
    expect(() => packInt4([1.5], false)).toThrow(RangeError);
    expect(() => packInt4([NaN], true)).toThrow(RangeError);
    expect(() => unpackInt4(Uint8Array.of(1), 3, true)).toThrow(RangeError);
  });
});

describe('data types', () => {
  it('uses the onnx.proto numbers and onnxruntime names', () => {
    expect([DataType.FLOAT, DataType.UINT8, DataType.INT64, DataType.FLOAT16, DataType.BFLOAT16]).toEqual([1, 2, 7, 10, 16]);
    expect([DataType.FLOAT8E4M3FN, DataType.FLOAT8E5M2FNUZ, DataType.UINT4, DataType.INT4, DataType.FLOAT4E2M1]).toEqual([17, 20, 21, 22, 23]);
    const names: Array<[number, string]> = [[1, 'float32'], [2, 'uint8'], [3, 'int8'], [4, 'uint16'], [5, 'int16'],
      [6, 'int32'], [7, 'int64'], [8, 'string'], [9, 'bool'], [10, 'float16'], [11, 'float64'], [12, 'uint32'],
      [13, 'uint64'], [16, 'bfloat16'], [21, 'uint4'], [22, 'int4']];
    for (const [dt, name] of names) {
      expect(dataTypeName(dt)).toBe(name);
      expect(dataTypeFromName(name)).toBe(dt);
    }
    expect(dataTypeFromName('FLOAT')).toBe(DataType.FLOAT);
    expect(dataTypeFromName('double')).toBe(DataType.DOUBLE);
    expect(dataTypeFromName('float8e4m3fn')).toBe(17);
    expect(dataTypeFromName('nope')).toBeUndefined();
    expect(isDataType(23)).toBe(true);
    expect(isDataType(0)).toBe(false);
    expect(() => dataTypeName(99)).toThrow(CompressError);
  });

  it('knows element sizes', () => {
    expect(bitsPerElement(DataType.FLOAT)).toBe(32);
    expect(bitsPerElement(DataType.INT4)).toBe(4);
    expect(bitsPerElement(DataType.FLOAT4E2M1)).toBe(4);
    expect(bitsPerElement(DataType.FLOAT8E5M2)).toBe(8);
    expect(bitsPerElement(DataType.COMPLEX128)).toBe(128);
    expect(byteLength(DataType.FLOAT16, 3)).toBe(6);
    expect(byteLength(DataType.INT64, 2)).toBe(16);
    expect(byteLength(DataType.UINT4, 3)).toBe(2);
    expect(byteLength(DataType.INT4, 4)).toBe(2);
    expect(byteLength(DataType.FLOAT4E2M1, 0)).toBe(0);
    expect(() => byteLength(DataType.STRING, 1)).toThrow(RangeError);
    expect(() => byteLength(DataType.FLOAT, -1)).toThrow(RangeError);
  });
});
