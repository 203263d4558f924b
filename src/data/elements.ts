/** Element types of sample values: which typed array holds each, and conversions between them. */
import { CompressError } from '../errors.js';
import { float16ToFloat32Array, float32ArrayToFloat16 } from '../onnx/float16.js';
import type { TypedArray } from '../onnx/tensor.js';

export type Elem = 'float' | 'int' | 'bool';

export interface TypeInfo {
  elem: Elem;
  make: (n: number) => TypedArray;
}

export const TYPES: Record<string, TypeInfo> = {
  float32: { elem: 'float', make: (n) => new Float32Array(n) },
  float64: { elem: 'float', make: (n) => new Float64Array(n) },
  float16: { elem: 'float', make: (n) => new Uint16Array(n) },
  int64: { elem: 'int', make: (n) => new BigInt64Array(n) },
  uint64: { elem: 'int', make: (n) => new BigUint64Array(n) },
  int32: { elem: 'int', make: (n) => new Int32Array(n) },
  uint32: { elem: 'int', make: (n) => new Uint32Array(n) },
  int16: { elem: 'int', make: (n) => new Int16Array(n) },
  uint16: { elem: 'int', make: (n) => new Uint16Array(n) },
  int8: { elem: 'int', make: (n) => new Int8Array(n) },
  uint8: { elem: 'int', make: (n) => new Uint8Array(n) },
  bool: { elem: 'bool', make: (n) => new Uint8Array(n) },
};

/** Accepted spellings of dtypes in `{dtype, dims, data}` values. */
export const DTYPE_ALIASES: Record<string, string> = { float: 'float32', double: 'float64', half: 'float16', long: 'int64', int: 'int32', boolean: 'bool' };

export function typeInfo(type: string, where: () => string): TypeInfo {
  const t = TYPES[type];
  if (!t) throw new CompressError('data', `${where()}: inputs of type ${type} are not supported as data`);
  return t;
}

export function product(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function fmtDims(dims: readonly (number | string)[]): string {
  return `[${dims.join(', ')}]`;
}

/** Converts values between element types (float16 is held as bits). Float → integer is refused by the callers. */
export function convertArray(src: TypedArray, srcType: string, dstType: string): TypedArray {
  if (srcType === dstType) return src;
  const n = src.length;
  const dst = TYPES[dstType].make(n);
  let from: ArrayLike<number | bigint> = src;
  if (srcType === 'float16') from = float16ToFloat32Array(src as Uint16Array);
  if (dstType === 'float16') {
    const f32 = from instanceof Float32Array ? from : Float32Array.from(from as ArrayLike<number>, Number);
    return float32ArrayToFloat16(f32);
  }
  if (dst instanceof BigInt64Array || dst instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) dst[i] = BigInt(from[i]);
  } else if (dstType === 'bool') {
    for (let i = 0; i < n; i++) dst[i] = Number(from[i]) !== 0 ? 1 : 0;
  } else {
    for (let i = 0; i < n; i++) dst[i] = Number(from[i]);
  }
  return dst;
}

export function convertible(srcType: string, dstType: string): boolean {
  if (srcType === dstType) return true;
  const s = TYPES[srcType]?.elem;
  const d = TYPES[dstType]?.elem;
  if (!s || !d) return false;
  return !(s === 'float' && d !== 'float');
}
