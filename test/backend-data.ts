/**
 * Reading the ONNX backend test cases of Debian's libonnx-testdata (model.onnx + test_data_set_N/
 * input_K.pb, output_K.pb) and comparing onnxruntime's outputs with the reference outputs.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeModel, decodeTensor, encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType, dataTypeName, isDataType } from '../src/onnx/dtypes.js';
import { float16ToFloat32Array } from '../src/onnx/float16.js';
import { tensorValues } from '../src/onnx/tensor.js';
import type { ModelProto, TensorProto } from '../src/onnx/types.js';

export const DATA_ROOT = process.env.LIBONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data';
const RTOL = 1e-3;
const ATOL = 1e-5;
const utf8 = new TextDecoder();

export interface BackendCase {
  dir: string;
  model: ModelProto;
  feeds: Record<string, ort.Tensor>;
  expected: Map<string, TensorProto>;
}

/** A case by folder relative to the data root ('pytorch-operator/test_operator_pad'); set 0 only. */
export function loadCase(rel: string): BackendCase {
  const dir = join(DATA_ROOT, rel);
  if (!existsSync(dir)) throw new Error(`libonnx-testdata case ${dir} not found (apt-get install libonnx-testdata, or set LIBONNX_TESTDATA)`);
  const model = decodeModel(readFileSync(join(dir, 'model.onnx')));
  const set = join(dir, 'test_data_set_0');
  const files = readdirSync(set);
  const count = (prefix: string) => files.filter((f) => new RegExp(`^${prefix}_\\d+\\.pb$`).test(f)).length;
  const inits = new Set(model.graph!.initializer.map((t) => t.name));
  const inputs = model.graph!.input.filter((v) => !inits.has(v.name));
  const feeds: Record<string, ort.Tensor> = {};
  const expected = new Map<string, TensorProto>();
  for (let k = 0; k < count('input'); k++) feeds[inputs[k].name!] = toOrt(decodeTensor(readFileSync(join(set, `input_${k}.pb`))));
  for (let k = 0; k < count('output'); k++) expected.set(model.graph!.output[k].name!, decodeTensor(readFileSync(join(set, `output_${k}.pb`))));
  return { dir: rel, model, feeds, expected };
}

export function toOrt(t: TensorProto): ort.Tensor {
  const dt = t.dataType ?? 0;
  const type = isDataType(dt) ? dataTypeName(dt) : `type ${dt}`;
  const dims = t.dims.map(Number);
  if (dt === DataType.STRING) return new ort.Tensor('string', t.stringData.map((b) => utf8.decode(b)), dims);
  return new ort.Tensor(type as 'float32', tensorValues(t) as Float32Array, dims);
}

/** Runs a model on a case's inputs; returns the first output that differs from the reference, or undefined. */
export async function mismatch(model: ModelProto, c: BackendCase): Promise<string | undefined> {
  const session = await ort.InferenceSession.create(encodeModelToBytes(model), { intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3 });
  try {
    const out = await session.run(c.feeds);
    for (const [name, ref] of c.expected) {
      const why = differs(out[name] as ort.Tensor | undefined, ref);
      if (why) return `${name}: ${why}`;
    }
    return undefined;
  } finally {
    await session.release();
  }
}

function differs(actual: ort.Tensor | undefined, ref: TensorProto): string | undefined {
  if (!actual) return 'missing';
  if (actual.dims.join() !== ref.dims.map(Number).join()) return `dims [${actual.dims}] vs [${ref.dims}]`;
  if (ref.dataType === DataType.STRING) return JSON.stringify(actual.data) === JSON.stringify(ref.stringData.map((b) => utf8.decode(b))) ? undefined : 'strings';
  let want: ArrayLike<number | bigint> = tensorValues(ref);
  let got = actual.data as ArrayLike<number | bigint>;
  const float = ref.dataType === DataType.FLOAT || ref.dataType === DataType.DOUBLE || ref.dataType === DataType.FLOAT16;
  if (ref.dataType === DataType.FLOAT16) {
    want = float16ToFloat32Array(want as Uint16Array);
    got = float16ToFloat32Array(got as Uint16Array);
  }
  if (got.length !== want.length) return 'length';
  for (let i = 0; i < got.length; i++) {
    if (float) {
      const g = Number(got[i]);
      const w = Number(want[i]);
      if (Number.isNaN(g) || Number.isNaN(w)) {
        if (Number.isNaN(g) !== Number.isNaN(w)) return `[${i}] ${g} vs ${w}`;
      } else if (g !== w && !(Math.abs(g - w) <= ATOL + RTOL * Math.abs(w))) return `[${i}] ${g} vs ${w}`;
    } else if (BigInt(got[i]) !== BigInt(want[i])) return `[${i}] ${got[i]} vs ${want[i]}`;
  }
  return undefined;
}
