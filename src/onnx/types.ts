/**
 * ONNX messages as plain objects (names from onnx.proto in camelCase).
 * Scalars are `undefined` when absent from the file (proto2 presence is kept, so a round trip writes
 * exactly the fields that were read). Repeated fields are arrays, possibly empty.
 * `rawData` and other bytes are views into the buffer the model was read from.
 */
import type { Int64 } from './wire.js';
export type { Int64 };

/** Fields every decoded message may carry for a lossless round trip. */
export interface Wire {
  /** Fields this codec does not know, kept as raw tag+value bytes and written back last. */
  $unknown?: Uint8Array[];
  /** Repeated numeric fields whose packed/unpacked encoding differs from onnx.proto's default. */
  $packed?: Record<number, boolean>;
}

export interface StringStringEntryProto extends Wire {
  key?: string;
  value?: string;
}

export interface OperatorSetIdProto extends Wire {
  domain?: string;
  version?: Int64;
}

export interface ModelProto extends Wire {
  irVersion?: Int64;
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: Int64;
  docString?: string;
  graph?: GraphProto;
  opsetImport: OperatorSetIdProto[];
  metadataProps: StringStringEntryProto[];
  trainingInfo: TrainingInfoProto[];
  functions: FunctionProto[];
}

export interface TrainingInfoProto extends Wire {
  initialization?: GraphProto;
  algorithm?: GraphProto;
  initializationBinding: StringStringEntryProto[];
  updateBinding: StringStringEntryProto[];
}

export interface GraphProto extends Wire {
  node: NodeProto[];
  name?: string;
  initializer: TensorProto[];
  docString?: string;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  quantizationAnnotation: TensorAnnotation[];
  sparseInitializer: SparseTensorProto[];
  metadataProps: StringStringEntryProto[];
}

export interface NodeProto extends Wire {
  input: string[];
  output: string[];
  name?: string;
  opType?: string;
  attribute: AttributeProto[];
  docString?: string;
  domain?: string;
  overload?: string;
  metadataProps: StringStringEntryProto[];
}

/** AttributeProto.AttributeType */
export const AttributeType = {
  UNDEFINED: 0, FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8,
  TENSORS: 9, GRAPHS: 10, SPARSE_TENSOR: 11, SPARSE_TENSORS: 12, TYPE_PROTO: 13, TYPE_PROTOS: 14,
} as const;

export interface AttributeProto extends Wire {
  name?: string;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats: number[];
  ints: Int64[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  docString?: string;
  tp?: TypeProto;
  typeProtos: TypeProto[];
  type?: number;
  refAttrName?: string;
  sparseTensor?: SparseTensorProto;
  sparseTensors: SparseTensorProto[];
}

export interface ValueInfoProto extends Wire {
  name?: string;
  type?: TypeProto;
  docString?: string;
  metadataProps: StringStringEntryProto[];
}

export interface TensorAnnotation extends Wire {
  tensorName?: string;
  quantParameterTensorNames: StringStringEntryProto[];
}

export interface TensorProto extends Wire {
  dims: Int64[];
  dataType?: number;
  segment?: { begin?: Int64; end?: Int64 } & Wire;
  floatData?: Float32Array;
  int32Data?: Int32Array;
  stringData: Uint8Array[];
  int64Data: Int64[];
  name?: string;
  rawData?: Uint8Array;
  doubleData?: Float64Array;
  uint64Data: Int64[];
  docString?: string;
  externalData: StringStringEntryProto[];
  /** 0 default, 1 external (see externalData). */
  dataLocation?: number;
  metadataProps: StringStringEntryProto[];
  /**
   * In memory only, never encoded: set by readModelLazy (src/onnx/lazy.ts) on a tensor whose payload it
   * left in the model file — this file's path, from which tensorValues reads the bytes on demand.
   */
  lazyFile?: string;
}

export interface SparseTensorProto extends Wire {
  values?: TensorProto;
  indices?: TensorProto;
  dims: Int64[];
}

export interface TensorShapeProto extends Wire {
  dim: Dimension[];
}

export interface Dimension extends Wire {
  dimValue?: Int64;
  dimParam?: string;
  denotation?: string;
}

export interface TypeProto extends Wire {
  tensorType?: TypeTensor;
  sequenceType?: { elemType?: TypeProto } & Wire;
  mapType?: { keyType?: number; valueType?: TypeProto } & Wire;
  denotation?: string;
  sparseTensorType?: TypeTensor;
  optionalType?: { elemType?: TypeProto } & Wire;
}

export interface TypeTensor extends Wire {
  elemType?: number;
  shape?: TensorShapeProto;
}

export interface FunctionProto extends Wire {
  name?: string;
  input: string[];
  output: string[];
  attribute: string[];
  node: NodeProto[];
  docString?: string;
  opsetImport: OperatorSetIdProto[];
  domain?: string;
  attributeProto: AttributeProto[];
  valueInfo: ValueInfoProto[];
  overload?: string;
  metadataProps: StringStringEntryProto[];
}
