/**
 * NumPy arrays: the first axis is the samples.
 * - `.npy`: one array, for a model with one input.
 * - `.npz`: one array per input, named after it (`<input>.npy` inside the zip); optional `labels` (or
 *   `<labelKey>`) array. Stored and deflated entries, zip64 included.
 * - a folder of `<input>.npy` files, plus an optional `labels.npy` (or `<labelKey>.npy`).
 * Each sample's shape is the array's shape without its first axis; when that has one axis fewer than the
 * model's input, a batch axis of 1 is put in front. Supported dtypes: <f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1
 * <u2 <u4 <u8 |b1, C order. float64 data becomes float32 when the model wants float32 (integer data
 * widens or narrows to the input's integer type).
 */
import { closeSync, readdirSync, readFileSync } from 'node:fs';
import { openRegularFile } from '../onnx/paths.js';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { float16ToFloat32Array } from '../onnx/float16.js';
import type { TypedArray } from '../onnx/tensor.js';
import { convertArray, convertible, fmtDims, product, typeInfo, TYPES } from './elements.js';
import type { InputSpec, ReadOptions, Sample } from './types.js';
import { unknownInputMessage } from './values.js';
import { readZip } from './zip.js';

export interface NpyArray {
  /** ORT type name of the elements. */
  type: string;
  shape: number[];
  data: TypedArray;
}

const NPY_DESCR: Record<string, { type: string; bytes: number }> = {
  f4: { type: 'float32', bytes: 4 },
  f8: { type: 'float64', bytes: 8 },
  f2: { type: 'float16', bytes: 2 },
  i8: { type: 'int64', bytes: 8 },
  i4: { type: 'int32', bytes: 4 },
  i2: { type: 'int16', bytes: 2 },
  i1: { type: 'int8', bytes: 1 },
  u1: { type: 'uint8', bytes: 1 },
  u2: { type: 'uint16', bytes: 2 },
  u4: { type: 'uint32', bytes: 4 },
  u8: { type: 'uint64', bytes: 8 },
  b1: { type: 'bool', bytes: 1 },
};

/** Parses a .npy file (format versions 1, 2 and 3; little-endian, C order). */
export function parseNpy(bytes: Uint8Array, file?: string): NpyArray {
  const err = (m: string, offset?: number) => new CompressError('data', m, { file, offset });
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw err('not a .npy file (no \\x93NUMPY magic)', 0);
  const major = bytes[6];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = dv.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw err('truncated .npy header', 8);
    headerLen = dv.getUint32(8, true);
    start = 12;
  } else throw err(`unsupported .npy format version ${major}.${bytes[7]}`, 6);
  if (start + headerLen > bytes.length) throw err('truncated .npy header', start);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]+)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw err(`malformed .npy header: ${header.trim()}`, start);
  if (fortran === 'True') throw err('arrays in Fortran order (fortran_order: True) are not supported: save a C-order array (np.ascontiguousarray)');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const n = Number(s.replace(/L$/, ''));
      if (!Number.isInteger(n) || n < 0) throw err(`malformed shape (${shapeText}) in .npy header`, start);
      return n;
    });
  const order = descr[0];
  const code = descr.slice(1);
  const d = NPY_DESCR[code];
  const oneByte = d?.bytes === 1;
  if (!d || !(order === '<' || order === '|' || (order === '=' && !isBigEndianHost()) || (oneByte && order === '>'))) {
    throw err(`unsupported dtype '${descr}': supported are <f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1 <u2 <u4 <u8 |b1 (little-endian)`);
  }
  const dataStart = start + headerLen;
  const count = product(shape);
  const byteLen = count * d.bytes;
  if (dataStart + byteLen > bytes.length) throw err(`holds ${bytes.length - dataStart} bytes of data, expected ${byteLen} for shape (${shape.join(', ')}) of '${descr}'`, dataStart);
  const info = TYPES[d.type];
  const out = info.make(count);
  new Uint8Array(out.buffer, out.byteOffset, byteLen).set(bytes.subarray(dataStart, dataStart + byteLen));
  return { type: d.type, shape, data: out };
}

function isBigEndianHost(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 0;
}

/** A data file's bytes; opened without blocking, so a FIFO or device (e.g. inside a data folder) is an error, not a hang. */
function readBytes(file: string): Buffer {
  const { fd } = openRegularFile(file, 'data', 'a data file');
  try {
    return readFileSync(fd);
  } catch (e) {
    throw new CompressError('io', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  } finally {
    closeSync(fd);
  }
}

/** Per-sample tensors of one input from an array whose first axis is samples. */
function splitArray(arr: NpyArray, spec: InputSpec, file: string, entry: string): { dims: number[]; data: TypedArray } {
  const where = `${entry}: `;
  if (arr.shape.length === 0) throw new CompressError('data', `${where}a 0-d array has no sample axis (the first axis must be the samples)`, { file });
  if (!convertible(arr.type, spec.type)) {
    throw new CompressError('data', `${where}holds ${arr.type} values but the model's input "${spec.name}" is ${spec.type}`, { file });
  }
  typeInfo(spec.type, () => `${file}: ${where}input "${spec.name}"`);
  const rest = arr.shape.slice(1);
  let dims = rest;
  if (spec.dims.length && rest.length === spec.dims.length - 1) dims = [1, ...rest];
  else if (spec.dims.length && rest.length !== spec.dims.length) {
    throw new CompressError(
      'data',
      `${where}shape (${arr.shape.join(', ')}) gives samples of shape ${fmtDims(rest)} but the model's input "${spec.name}" is ${fmtDims(spec.dims)} (the first axis of the array is the samples)`,
      { file },
    );
  }
  spec.dims.forEach((d, i) => {
    if (typeof d === 'number' && dims[i] !== d) {
      throw new CompressError(
        'data',
        `${where}shape (${arr.shape.join(', ')}) gives samples of shape ${fmtDims(dims)} but the model's input "${spec.name}" is ${fmtDims(spec.dims)} (dim ${i} must be ${d})`,
        { file },
      );
    }
  });
  return { dims, data: convertArray(arr.data, arr.type, spec.type) };
}

function labelsFromArray(arr: NpyArray | undefined, n: number, file: string, entry: string): Sample['label'][] | undefined {
  if (!arr) return undefined;
  if (arr.shape[0] !== n) throw new CompressError('data', `${entry}: holds ${arr.shape[0] ?? 0} labels for ${n} samples`, { file });
  const values = arr.type === 'float16' ? float16ToFloat32Array(arr.data as Uint16Array) : arr.data;
  const per = product(arr.shape.slice(1));
  const out: Sample['label'][] = [];
  for (let i = 0; i < n; i++) {
    if (arr.shape.length === 1) out.push(Number(values[i]));
    else out.push(Array.from(values.subarray(i * per, (i + 1) * per) as ArrayLike<number | bigint>, Number));
  }
  return out;
}

/** Samples from named arrays (npz entries or directory files); `arrays` keys are input or label names. */
function samplesFromArrays(
  arrays: Map<string, { arr: () => NpyArray; entry: string }>,
  inputs: InputSpec[],
  limit: number,
  labelKey: string,
  file: string,
): Sample[] {
  const labelNames = [labelKey, 'labels', 'label'];
  const byName = new Map(inputs.map((i) => [i.name, i]));
  for (const [name, { entry }] of arrays) {
    if (!byName.has(name) && !labelNames.includes(name)) {
      throw new CompressError('data', `${entry}: array ${unknownInputMessage(name, inputs)} (or "${labelKey}" for labels)`, { file });
    }
  }
  const missing = inputs.filter((i) => !arrays.has(i.name)).map((i) => `"${i.name}"`);
  if (missing.length) {
    throw new CompressError('data', `no array for input${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: name each array after the model input it feeds`, { file });
  }
  let n = -1;
  let firstEntry = '';
  const split = inputs.map((spec) => {
    const { arr, entry } = arrays.get(spec.name)!;
    const a = arr();
    const count = a.shape[0] ?? 0;
    if (n < 0) [n, firstEntry] = [count, entry];
    else if (count !== n) throw new CompressError('data', `${entry}: holds ${count} samples but ${firstEntry} holds ${n} (the first axis is the samples)`, { file });
    return { spec, ...splitArray(a, spec, file, entry) };
  });
  const labelName = labelNames.find((l) => arrays.has(l) && !byName.has(l));
  const labels = labelName ? labelsFromArray(arrays.get(labelName)!.arr(), n, file, arrays.get(labelName)!.entry) : undefined;
  const count = Math.min(n, limit);
  const samples: Sample[] = [];
  for (let i = 0; i < count; i++) {
    const feeds: Record<string, ort.Tensor> = {};
    for (const { spec, dims, data } of split) {
      const per = product(dims);
      feeds[spec.name] = new ort.Tensor(spec.type as 'float32', data.subarray(i * per, (i + 1) * per) as Float32Array, dims);
    }
    samples.push(labels ? { feeds, label: labels[i] } : { feeds });
  }
  return samples;
}

/** A single .npy: one array for a model with one input, without labels (labels need an .npz or a folder). */
export function readNpy(file: string, inputs: InputSpec[], { limit }: ReadOptions): Sample[] {
  if (inputs.length !== 1) {
    throw new CompressError('data', `a single .npy feeds a model with one input; this model has ${inputs.length} (${inputs.map((i) => `"${i.name}"`).join(', ')}): use an .npz or a folder of <input>.npy files`, { file });
  }
  const arr = parseNpy(readBytes(file), file);
  const m = new Map([[inputs[0].name, { arr: () => arr, entry: 'array' }]]);
  return samplesFromArrays(m, inputs, limit, 'label', file);
}

export function readNpz(file: string, inputs: InputSpec[], { limit, labelKey }: ReadOptions): Sample[] {
  const zip = readZip(readBytes(file), file);
  const arrays = new Map<string, { arr: () => NpyArray; entry: string }>();
  for (const [entry, read] of zip) {
    if (entry.endsWith('/')) continue;
    const name = entry.endsWith('.npy') ? entry.slice(0, -4) : entry;
    arrays.set(name, { arr: () => parseNpy(read(), `${file}[${entry}]`), entry: `array "${name}"` });
  }
  return samplesFromArrays(arrays, inputs, limit, labelKey, file);
}

export function readNpyFolder(dir: string, inputs: InputSpec[], { limit, labelKey }: ReadOptions): Sample[] {
  const arrays = new Map<string, { arr: () => NpyArray; entry: string }>();
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.npy')) continue;
    const path = join(dir, f);
    arrays.set(f.slice(0, -4), { arr: () => parseNpy(readBytes(path), path), entry: f });
  }
  if (arrays.size === 0) throw new CompressError('data', `the folder has no .npy files: put one <input>.npy per model input there (${inputs.map((i) => `${i.name}.npy`).join(', ')})`, { file: dir });
  return samplesFromArrays(arrays, inputs, limit, labelKey, dir);
}
