/**
 * ONNX element types (TensorProto.DataType in onnx.proto) and their sizes.
 *
 * Names follow onnxruntime's `Tensor.Type` strings ('float32', 'float16', 'int64', ...) where ORT
 * has one; types ORT's JS API has no name for get the lower-case ONNX spelling ('bfloat16',
 * 'float8e4m3fn', 'complex64', ...).
 */
import { CompressError } from '../errors.js';

/** TensorProto.DataType values, numbered exactly as in onnx.proto. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24, // onnx 1.18: MX scale type
  UINT2: 25, // onnx 1.20
  INT2: 26, // onnx 1.20
} as const;
export type DataType = (typeof DataType)[keyof typeof DataType];

/** Per type: [name, bits per element]; 0 bits = variable size (STRING). Index = DataType value. */
const INFO: ReadonlyArray<readonly [string, number]> = [
  ['undefined', 0],
  ['float32', 32],
  ['uint8', 8],
  ['int8', 8],
  ['uint16', 16],
  ['int16', 16],
  ['int32', 32],
  ['int64', 64],
  ['string', 0],
  ['bool', 8],
  ['float16', 16],
  ['float64', 64],
  ['uint32', 32],
  ['uint64', 64],
  ['complex64', 64],
  ['complex128', 128],
  ['bfloat16', 16],
  ['float8e4m3fn', 8],
  ['float8e4m3fnuz', 8],
  ['float8e5m2', 8],
  ['float8e5m2fnuz', 8],
  ['uint4', 4],
  ['int4', 4],
  ['float4e2m1', 4],
  ['float8e8m0', 8],
  ['uint2', 2],
  ['int2', 2],
];

/** True when `n` is a known TensorProto.DataType other than UNDEFINED. */
export function isDataType(n: number): n is DataType {
  return Number.isInteger(n) && n > 0 && n < INFO.length;
}

function check(dt: number): asserts dt is DataType {
  if (!isDataType(dt)) throw new CompressError('model', `unsupported ONNX tensor data type ${dt}`);
}

/** onnxruntime-style type name: FLOAT → 'float32', FLOAT16 → 'float16', INT64 → 'int64', ... */
export function dataTypeName(dt: number): string {
  check(dt);
  return INFO[dt][0];
}

// Lower-case name → type: the names above, plus the onnx.proto spellings ('float', 'double', ...).
const BY_NAME = new Map<string, DataType>();
for (const [key, dt] of Object.entries(DataType)) {
  if (dt === 0) continue;
  BY_NAME.set(INFO[dt][0], dt);
  BY_NAME.set(key.toLowerCase(), dt);
}

/**
 * Inverse of dataTypeName; also accepts the onnx.proto spellings in any case ('FLOAT', 'double',
 * 'Float16'). Returns undefined for an unknown name so the caller can pick the error kind.
 */
export function dataTypeFromName(name: string): DataType | undefined {
  return BY_NAME.get(name.toLowerCase());
}

/** Storage bits of one element: 4 for INT4/UINT4/FLOAT4E2M1, 8 for FLOAT8*, 0 for STRING. */
export function bitsPerElement(dt: number): number {
  check(dt);
  return INFO[dt][1];
}

/**
 * Bytes of a packed tensor of `count` elements (raw_data size). Sub-byte types pack from the low
 * bits up, so an odd count of 4-bit values rounds up to a whole byte. STRING has no fixed size.
 */
export function byteLength(dt: number, count: number): number {
  const bits = bitsPerElement(dt);
  if (bits === 0) throw new RangeError(`${dataTypeName(dt)} tensors have no fixed byte length`);
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`invalid element count ${count}`);
  return bits >= 8 ? count * (bits / 8) : Math.ceil((count * bits) / 8);
}
