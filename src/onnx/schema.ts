/**
 * The messages of onnx.proto (ONNX 1.17 field numbers), as tables the codec walks.
 * Field names are the proto names in camelCase. Fields not listed here (newer ONNX additions such as
 * NodeProto.device_configurations) are kept byte-for-byte as unknown fields.
 *
 * onnx.proto is proto2: repeated scalars are written unpacked, except TensorProto's *_data fields which
 * are declared [packed = true]. `packed` below is that default; the codec records files that differ.
 */

/** i32: int32/enum varint; i64/u64: 64-bit varints; f32/f64: fixed; str: UTF-8; bytes: raw view. */
export type FieldKind = 'i32' | 'i64' | 'u64' | 'f32' | 'f64' | 'str' | 'bytes' | 'msg';

export interface FieldDef {
  no: number;
  name: string;
  kind: FieldKind;
  repeated: boolean;
  /** Repeated numeric fields: packed by default in onnx.proto. */
  packed: boolean;
  /** Repeated numeric fields decoded into a typed array instead of a JS array (tensor payloads). */
  typed?: 'Float32Array' | 'Float64Array' | 'Int32Array';
  msg?: MessageDef;
}

export interface MessageDef {
  name: string;
  /** Sorted by field number: the order canonical protobuf writers use. */
  fields: FieldDef[];
  /** Field number → definition. */
  byNo: (FieldDef | undefined)[];
}

type Spec = [no: number, name: string, kind: FieldKind | string, opts?: string];

const specs: Record<string, Spec[]> = {
  ModelProto: [
    [1, 'irVersion', 'i64'], [2, 'producerName', 'str'], [3, 'producerVersion', 'str'], [4, 'domain', 'str'],
    [5, 'modelVersion', 'i64'], [6, 'docString', 'str'], [7, 'graph', 'GraphProto'],
    [8, 'opsetImport', 'OperatorSetIdProto', 'rep'], [14, 'metadataProps', 'StringStringEntryProto', 'rep'],
    [20, 'trainingInfo', 'TrainingInfoProto', 'rep'], [25, 'functions', 'FunctionProto', 'rep'],
  ],
  OperatorSetIdProto: [[1, 'domain', 'str'], [2, 'version', 'i64']],
  StringStringEntryProto: [[1, 'key', 'str'], [2, 'value', 'str']],
  TrainingInfoProto: [
    [1, 'initialization', 'GraphProto'], [2, 'algorithm', 'GraphProto'],
    [3, 'initializationBinding', 'StringStringEntryProto', 'rep'], [4, 'updateBinding', 'StringStringEntryProto', 'rep'],
  ],
  GraphProto: [
    [1, 'node', 'NodeProto', 'rep'], [2, 'name', 'str'], [5, 'initializer', 'TensorProto', 'rep'],
    [10, 'docString', 'str'], [11, 'input', 'ValueInfoProto', 'rep'], [12, 'output', 'ValueInfoProto', 'rep'],
    [13, 'valueInfo', 'ValueInfoProto', 'rep'], [14, 'quantizationAnnotation', 'TensorAnnotation', 'rep'],
    [15, 'sparseInitializer', 'SparseTensorProto', 'rep'], [16, 'metadataProps', 'StringStringEntryProto', 'rep'],
  ],
  NodeProto: [
    [1, 'input', 'str', 'rep'], [2, 'output', 'str', 'rep'], [3, 'name', 'str'], [4, 'opType', 'str'],
    [5, 'attribute', 'AttributeProto', 'rep'], [6, 'docString', 'str'], [7, 'domain', 'str'], [8, 'overload', 'str'],
    [9, 'metadataProps', 'StringStringEntryProto', 'rep'],
  ],
  AttributeProto: [
    [1, 'name', 'str'], [2, 'f', 'f32'], [3, 'i', 'i64'], [4, 's', 'bytes'], [5, 't', 'TensorProto'],
    [6, 'g', 'GraphProto'], [7, 'floats', 'f32', 'rep'], [8, 'ints', 'i64', 'rep'], [9, 'strings', 'bytes', 'rep'],
    [10, 'tensors', 'TensorProto', 'rep'], [11, 'graphs', 'GraphProto', 'rep'], [13, 'docString', 'str'],
    [14, 'tp', 'TypeProto'], [15, 'typeProtos', 'TypeProto', 'rep'], [20, 'type', 'i32'], [21, 'refAttrName', 'str'],
    [22, 'sparseTensor', 'SparseTensorProto'], [23, 'sparseTensors', 'SparseTensorProto', 'rep'],
  ],
  ValueInfoProto: [
    [1, 'name', 'str'], [2, 'type', 'TypeProto'], [3, 'docString', 'str'],
    [4, 'metadataProps', 'StringStringEntryProto', 'rep'],
  ],
  TensorAnnotation: [[1, 'tensorName', 'str'], [2, 'quantParameterTensorNames', 'StringStringEntryProto', 'rep']],
  TensorProto: [
    [1, 'dims', 'i64', 'rep'], [2, 'dataType', 'i32'], [3, 'segment', 'Segment'],
    [4, 'floatData', 'f32', 'rep packed Float32Array'], [5, 'int32Data', 'i32', 'rep packed Int32Array'],
    [6, 'stringData', 'bytes', 'rep'], [7, 'int64Data', 'i64', 'rep packed'], [8, 'name', 'str'],
    [9, 'rawData', 'bytes'], [10, 'doubleData', 'f64', 'rep packed Float64Array'], [11, 'uint64Data', 'u64', 'rep packed'],
    [12, 'docString', 'str'], [13, 'externalData', 'StringStringEntryProto', 'rep'], [14, 'dataLocation', 'i32'],
    [16, 'metadataProps', 'StringStringEntryProto', 'rep'],
  ],
  Segment: [[1, 'begin', 'i64'], [2, 'end', 'i64']],
  SparseTensorProto: [[1, 'values', 'TensorProto'], [2, 'indices', 'TensorProto'], [3, 'dims', 'i64', 'rep']],
  TensorShapeProto: [[1, 'dim', 'Dimension', 'rep']],
  Dimension: [[1, 'dimValue', 'i64'], [2, 'dimParam', 'str'], [3, 'denotation', 'str']],
  TypeProto: [
    [1, 'tensorType', 'TypeTensor'], [4, 'sequenceType', 'TypeSequence'], [5, 'mapType', 'TypeMap'],
    [6, 'denotation', 'str'], [8, 'sparseTensorType', 'TypeTensor'], [9, 'optionalType', 'TypeSequence'],
  ],
  TypeTensor: [[1, 'elemType', 'i32'], [2, 'shape', 'TensorShapeProto']],
  TypeSequence: [[1, 'elemType', 'TypeProto']],
  TypeMap: [[1, 'keyType', 'i32'], [2, 'valueType', 'TypeProto']],
  FunctionProto: [
    [1, 'name', 'str'], [4, 'input', 'str', 'rep'], [5, 'output', 'str', 'rep'], [6, 'attribute', 'str', 'rep'],
    [7, 'node', 'NodeProto', 'rep'], [8, 'docString', 'str'], [9, 'opsetImport', 'OperatorSetIdProto', 'rep'],
    [10, 'domain', 'str'], [11, 'attributeProto', 'AttributeProto', 'rep'], [12, 'valueInfo', 'ValueInfoProto', 'rep'],
    [13, 'overload', 'str'], [14, 'metadataProps', 'StringStringEntryProto', 'rep'],
  ],
  // onnx-data.proto: the values of test_data_set_N/*.pb files that are not plain tensors.
  SequenceProto: [
    [1, 'name', 'str'], [2, 'elemType', 'i32'], [3, 'tensorValues', 'TensorProto', 'rep'],
    [4, 'sparseTensorValues', 'SparseTensorProto', 'rep'], [5, 'sequenceValues', 'SequenceProto', 'rep'],
    [6, 'mapValues', 'MapProto', 'rep'], [7, 'optionalValues', 'OptionalProto', 'rep'],
  ],
  MapProto: [
    [1, 'name', 'str'], [2, 'keyType', 'i32'], [3, 'keys', 'i64', 'rep'], [4, 'stringKeys', 'bytes', 'rep'],
    [5, 'values', 'SequenceProto'],
  ],
  OptionalProto: [
    [1, 'name', 'str'], [2, 'elemType', 'i32'], [3, 'tensorValue', 'TensorProto'],
    [4, 'sparseTensorValue', 'SparseTensorProto'], [5, 'sequenceValue', 'SequenceProto'], [6, 'mapValue', 'MapProto'],
    [7, 'optionalValue', 'OptionalProto'],
  ],
};

const scalarKinds = new Set(['i32', 'i64', 'u64', 'f32', 'f64', 'str', 'bytes']);

function build(): Record<string, MessageDef> {
  const defs: Record<string, MessageDef> = {};
  for (const name of Object.keys(specs)) defs[name] = { name, fields: [], byNo: [] };
  for (const [name, list] of Object.entries(specs)) {
    const def = defs[name];
    for (const [no, field, kind, opts = ''] of list) {
      const words = opts.split(' ');
      const isScalar = scalarKinds.has(kind);
      const f: FieldDef = {
        no,
        name: field,
        kind: (isScalar ? kind : 'msg') as FieldKind,
        repeated: words.includes('rep'),
        packed: words.includes('packed'),
      };
      const typed = words.find((w) => w.endsWith('Array'));
      if (typed) f.typed = typed as FieldDef['typed'];
      if (!isScalar) f.msg = defs[kind];
      def.fields.push(f);
      def.byNo[no] = f;
    }
    def.fields.sort((a, b) => a.no - b.no);
  }
  return defs;
}

export const messages = build();
