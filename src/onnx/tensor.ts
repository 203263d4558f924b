/**
 * Typed access to TensorProto payloads, whichever field holds them.
 *
 * Layouts (ONNX): raw_data is little-endian, row-major; float16/bfloat16 are their 16-bit patterns;
 * bool is one byte per element; int4/uint4 pack two elements a byte, the first in the low nibble.
 * Typed fields: float_data (float, complex64), double_data, int64_data, uint64_data (uint32/uint64),
 * int32_data (int32, int16, int8, uint16, uint8, bool, float16 and bfloat16 bit patterns, and packed
 * 4-bit bytes).
 */
import { closeSync, openSync } from 'node:fs';
import { CompressError } from '../errors.js';
import { DataType, dataTypeName } from './dtypes.js';
import { bfloat16ToFloat32Array, float16ToFloat32Array } from './float16.js';
import { readFullAt } from './paths.js';
import type { Int64, TensorProto } from './types.js';

export type TypedArray =
  | Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array
  | BigInt64Array | BigUint64Array;

export function dimsOf(t: { dims: Int64[] }): number[] {
  return t.dims.map(Number);
}

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

type Ctor = { new (buffer: ArrayBuffer, byteOffset: number, length: number): TypedArray; new (length: number): TypedArray; BYTES_PER_ELEMENT: number };

/** The array type that holds one element of each data type (4-bit types: their packed bytes). */
function storageCtor(dataType: number): Ctor {
  switch (dataType) {
    case DataType.FLOAT:
    case DataType.COMPLEX64:
      return Float32Array as unknown as Ctor;
    case DataType.DOUBLE:
    case DataType.COMPLEX128:
      return Float64Array as unknown as Ctor;
    case DataType.INT8:
      return Int8Array as unknown as Ctor;
    case DataType.INT16:
      return Int16Array as unknown as Ctor;
    case DataType.UINT16:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return Uint16Array as unknown as Ctor;
    case DataType.INT32:
      return Int32Array as unknown as Ctor;
    case DataType.UINT32:
      return Uint32Array as unknown as Ctor;
    case DataType.INT64:
      return BigInt64Array as unknown as Ctor;
    case DataType.UINT64:
      return BigUint64Array as unknown as Ctor;
    default: // uint8, bool, 8-bit floats, packed 4-bit
      return Uint8Array as unknown as Ctor;
  }
}

/** Number of storage elements (bytes for 4-bit types) a tensor of `count` elements takes. */
function storageLength(dataType: number, count: number): number {
  const complex = dataType === DataType.COMPLEX64 || dataType === DataType.COMPLEX128 ? 2 : 1;
  if (dataType === DataType.INT4 || dataType === DataType.UINT4 || dataType === DataType.FLOAT4E2M1) return Math.ceil(count / 2);
  return count * complex;
}

function describe(t: TensorProto): string {
  return `tensor "${t.name ?? ''}" (${dataTypeName(t.dataType ?? 0)}, dims [${dimsOf(t).join(', ')}])`;
}

/**
 * The stored values as a typed array of the storage type (see storageCtor): a view into the file
 * when raw_data is aligned, else a copy. External tensors must be loaded first.
 */
export function tensorValues(t: TensorProto): TypedArray {
  const dataType = t.dataType ?? 0;
  if (dataType === DataType.STRING || dataType === 0) throw new CompressError('model', `${describe(t)} has no numeric data`);
  const lazy = t.dataLocation === 1 && t.lazyFile !== undefined;
  if (t.dataLocation === 1 && !lazy) throw new CompressError('model', `${describe(t)} is stored in external data that was not loaded`);
  const C = storageCtor(dataType);
  const length = storageLength(dataType, elementCount(dimsOf(t)));
  if (t.rawData || lazy) {
    const raw = lazy ? lazyBytes(t) : t.rawData!;
    if (raw.length !== length * C.BYTES_PER_ELEMENT) {
      throw new CompressError('model', `${describe(t)} has ${raw.length} bytes of raw data, expected ${length * C.BYTES_PER_ELEMENT}`);
    }
    if ((raw.byteOffset % C.BYTES_PER_ELEMENT) === 0) return new C(raw.buffer as ArrayBuffer, raw.byteOffset, length);
    const copy = new Uint8Array(raw.length);
    copy.set(raw);
    return new C(copy.buffer, 0, length);
  }
  const out = new C(length);
  const fromTyped = (src: ArrayLike<number | bigint> | undefined) => {
    if (!src || src.length !== length) {
      throw new CompressError('model', `${describe(t)} holds ${src?.length ?? 0} values, expected ${length}`);
    }
    if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
      for (let i = 0; i < length; i++) out[i] = BigInt(src[i]);
    } else for (let i = 0; i < length; i++) out[i] = Number(src[i]);
  };
  switch (dataType) {
    case DataType.FLOAT:
    case DataType.COMPLEX64:
      fromTyped(t.floatData);
      break;
    case DataType.DOUBLE:
    case DataType.COMPLEX128:
      fromTyped(t.doubleData);
      break;
    case DataType.INT64:
      fromTyped(t.int64Data);
      break;
    case DataType.UINT32:
    case DataType.UINT64:
      fromTyped(t.uint64Data);
      break;
    default:
      fromTyped(t.int32Data);
  }
  return out;
}

/** Where the payload of a lazily read tensor is in its file (readModelLazy always writes both numbers). */
export function lazyRange(t: TensorProto): { offset: number; length: number } {
  const get = (k: string) => Number(t.externalData.find((e) => e.key === k)?.value ?? 0);
  return { offset: get('offset'), length: get('length') };
}

/**
 * The payload of a tensor that readModelLazy left in its file (a fresh buffer on every call: callers
 * that read a lazy tensor often should load it once, see loadLazy).
 */
export function lazyBytes(t: TensorProto): Uint8Array {
  const { offset, length } = lazyRange(t);
  const out = new Uint8Array(length);
  const fd = openSync(t.lazyFile!, 'r');
  try {
    if (readFullAt(fd, out, offset) < length) throw new CompressError('model', `${describe(t)} reads past the end of the file`, { file: t.lazyFile });
  } finally {
    closeSync(fd);
  }
  return out;
}

/** Raw little-endian bytes of a tensor's values, whatever field held them. */
export function tensorBytes(t: TensorProto): Uint8Array {
  if (t.rawData && t.dataLocation !== 1) return t.rawData;
  const v = tensorValues(t);
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** Float values of a float tensor (float32/64, float16, bfloat16) as a Float32Array. */
export function tensorFloat32(t: TensorProto): Float32Array {
  const v = tensorValues(t);
  switch (t.dataType) {
    case DataType.FLOAT:
      return v as Float32Array;
    case DataType.DOUBLE:
      return Float32Array.from(v as Float64Array);
    case DataType.FLOAT16:
      return float16ToFloat32Array(v as Uint16Array);
    case DataType.BFLOAT16:
      return bfloat16ToFloat32Array(v as Uint16Array);
    default:
      throw new CompressError('model', `${describe(t)} is not a float tensor`);
  }
}

/** A new tensor whose bytes live in raw_data (the form every writer of large models uses). */
export function makeTensor(name: string, dataType: number, dims: readonly number[], data: TypedArray | Uint8Array): TensorProto {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return {
    dims: [...dims],
    dataType,
    name,
    rawData: bytes,
    stringData: [],
    int64Data: [],
    uint64Data: [],
    externalData: [],
    metadataProps: [],
  };
}

/** A 0-d or 1-d int64 tensor (shapes, axes). */
export function makeInt64Tensor(name: string, values: readonly number[], dims: readonly number[] = [values.length]): TensorProto {
  return makeTensor(name, DataType.INT64, dims, BigInt64Array.from(values.map(BigInt)));
}
