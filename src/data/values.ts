/**
 * Sample values from JSON lines and JS modules, checked against the model's inputs: a nested array with
 * the exact shape of one call, `{dtype, dims, data}` (an ort.Tensor is one), or a typed array (modules).
 * Symbolic dims must agree across the inputs of one sample. Shared by the JSONL and module readers; the
 * error helpers are shared by every reader.
 */
import * as ort from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { float32ArrayToFloat16 } from '../onnx/float16.js';
import { limit } from '../limits.js';
import type { TypedArray } from '../onnx/tensor.js';
import { suggest } from '../suggest.js';
import { convertArray, convertible, DTYPE_ALIASES, fmtDims, product, typeInfo, TYPES, type TypeInfo } from './elements.js';
import type { InputSpec, Sample } from './types.js';

// ------------------------------------------------------------------------------------------ errors

export interface Where {
  file?: string;
  line?: number;
  column?: number;
  /** 1-based sample number. */
  sample: number;
}

export function fail(w: Where, message: string): never {
  throw new CompressError('data', `sample ${w.sample}: ${message}`, w.file ? { file: w.file, line: w.line, column: w.column } : {});
}

export function unknownInputMessage(name: string, inputs: InputSpec[], what = 'input'): string {
  const names = inputs.map((i) => i.name);
  const s = suggest(name, names);
  return `"${name}" is not an ${what} of the model${s ? ` (did you mean "${s}"?)` : ''}; its inputs are ${names.map((n) => `"${n}"`).join(', ')}`;
}

// ------------------------------------------------------------------------------------------ values

/** Checks a value's shape against the input's dims; symbolic dims must agree across the inputs of one sample. */
function checkShape(spec: InputSpec, dims: readonly number[], w: Where, symbols: Map<string, { size: number; input: string }>): void {
  if (spec.dims.length === 0) return; // no shape information
  const expect = () => fmtDims(spec.dims); // for messages only: per sample, only on failure
  if (dims.length !== spec.dims.length) {
    const hint =
      dims.length === spec.dims.length - 1 && (typeof spec.dims[0] === 'string' || spec.dims[0] === 1)
        ? ' (a sample is the feeds of one model call: add the batch axis, e.g. [[…]] for a batch of 1)'
        : '';
    fail(w, `input "${spec.name}" has shape ${fmtDims(dims)} (rank ${dims.length}) but the model expects ${expect()} (rank ${spec.dims.length})${hint}`);
  }
  spec.dims.forEach((d, i) => {
    if (typeof d === 'number') {
      if (dims[i] !== d) fail(w, `input "${spec.name}" has shape ${fmtDims(dims)} but the model expects ${expect()} (dim ${i} must be ${d})`);
    } else if (d !== '?') {
      const seen = symbols.get(d);
      if (!seen) symbols.set(d, { size: dims[i], input: spec.name });
      else if (seen.size !== dims[i]) {
        fail(w, `input "${spec.name}" has shape ${fmtDims(dims)}: dim ${i} ("${d}") is ${dims[i]} but input "${seen.input}" has ${seen.size} for "${d}"`);
      }
    }
  });
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 20 ? v.slice(0, 20) + '…' : v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return String(v);
}

const idx = (path: number[]) => path.map((i) => `[${i}]`).join('');

/** Shape of a nested array, from its first elements (validated by flattenInto). */
function nestedShape(v: unknown): number[] {
  const shape: number[] = [];
  let cur = v;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  return shape;
}

/** Writes a nested array's leaves into `out`, checking it is rectangular and numeric. */
function flattenNested(v: unknown, shape: number[], info: TypeInfo, type: string, input: string, w: Where): TypedArray {
  // float16 values are collected as float32 and converted to their bits at the end.
  const out = type === 'float16' ? new Float32Array(product(shape)) : info.make(product(shape));
  const big = out instanceof BigInt64Array || out instanceof BigUint64Array;
  let at = 0;
  const path: number[] = [];
  const leaf = (x: unknown) => {
    let num: number;
    if (typeof x === 'number') num = x;
    else if (typeof x === 'boolean' && info.elem === 'bool') num = x ? 1 : 0;
    else if (typeof x === 'bigint' && info.elem === 'int') {
      if (big) (out as BigInt64Array)[at++] = x;
      else out[at++] = Number(x);
      return;
    } else if (Array.isArray(x)) fail(w, `input "${input}": ragged array: ${idx(path)} is an array but the elements before it are numbers`);
    else fail(w, `input "${input}": ${idx(path)} is ${describeValue(x)}, not a number`);
    if (info.elem === 'int' && !Number.isInteger(num)) fail(w, `input "${input}": ${idx(path)} is ${num}, not an integer (the input is ${type})`);
    if (big) (out as BigInt64Array)[at++] = BigInt(num);
    else out[at++] = num;
  };
  const walk = (x: unknown, depth: number) => {
    if (depth === shape.length) return leaf(x);
    if (!Array.isArray(x)) {
      if (typeof x === 'number' || typeof x === 'boolean') fail(w, `input "${input}": ragged array: ${idx(path)} is a number where an array of ${shape[depth]} was expected`);
      fail(w, `input "${input}": ${idx(path)} is ${describeValue(x)}, not a number or an array`);
    }
    if (x.length !== shape[depth]) fail(w, `input "${input}": ragged array: ${idx(path)} has ${x.length} elements but ${idx(path.map(() => 0))} has ${shape[depth]}`);
    for (let i = 0; i < x.length; i++) {
      path.push(i);
      walk(x[i], depth + 1);
      path.pop();
    }
  };
  walk(v, 0);
  return type === 'float16' ? float32ArrayToFloat16(out as Float32Array) : out;
}

const TYPED_NAMES: [new (...a: never[]) => TypedArray, string][] = [
  [Float32Array, 'float32'], [Float64Array, 'float64'], [BigInt64Array, 'int64'], [BigUint64Array, 'uint64'],
  [Int32Array, 'int32'], [Uint32Array, 'uint32'], [Int16Array, 'int16'], [Uint16Array, 'uint16'],
  [Int8Array, 'int8'], [Uint8Array, 'uint8'],
];

function typedArrayType(v: unknown, want: string): string | undefined {
  for (const [C, name] of TYPED_NAMES) {
    if (v instanceof C) {
      if (name === 'uint16' && want === 'float16') return 'float16'; // float16 travels as its bits
      if (name === 'uint8' && want === 'bool') return 'bool';
      return name;
    }
  }
  return undefined;
}

/** Dims for a bare typed array: the input's dims, symbolic first dim 1, one other symbolic dim inferred. */
function inferDims(spec: InputSpec, length: number, w: Where): number[] {
  const dims: (number | undefined)[] = spec.dims.map((d, i) => (typeof d === 'number' ? d : i === 0 ? 1 : undefined));
  const unknown = dims.filter((d) => d === undefined).length;
  const known = product(dims.filter((d): d is number => d !== undefined));
  if (spec.dims.length === 0) return [length];
  if (unknown > 1) fail(w, `input "${spec.name}" is a bare typed array but the model's shape ${fmtDims(spec.dims)} has several symbolic dims: give {dtype, dims, data}`);
  if (unknown === 1) {
    if (known === 0 || length % known !== 0) fail(w, `input "${spec.name}" has ${length} values, which does not fit the model's shape ${fmtDims(spec.dims)}`);
    return dims.map((d) => d ?? length / known);
  }
  if (known !== length) fail(w, `input "${spec.name}" has ${length} values but the model's shape ${fmtDims(spec.dims)} needs ${known}`);
  return dims as number[];
}

function isDimsArray(d: unknown): d is number[] {
  return Array.isArray(d) && d.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0);
}

/**
 * One input's value (from JSON or a module) as an ort.Tensor of the input's type: a nested array,
 * `{dtype, dims, data}` (also an ort.Tensor, which has `type`), or a typed array (modules).
 */
function valueToTensor(value: unknown, spec: InputSpec, w: Where, symbols: Map<string, { size: number; input: string }>): ort.Tensor {
  const info = typeInfo(spec.type, () => `sample ${w.sample}: input "${spec.name}"`);
  let dims: number[];
  let data: TypedArray;
  if (Array.isArray(value) || typeof value === 'number' || typeof value === 'boolean') {
    dims = nestedShape(value);
    const maxDepth = limit('JSON_DEPTH');
    if (dims.length > maxDepth) fail(w, `input "${spec.name}" nests arrays ${dims.length} deep, over the limit of ${maxDepth} (set ONNX_COMPRESS_LIMIT_JSON_DEPTH to change it)`);
    // The shape (from the first elements) is checked before every value is converted: a line of
    // 4 million numbers for a 784-value input is refused without walking them all.
    checkShape(spec, dims, w, symbols);
    data = flattenNested(value, dims, info, spec.type, spec.name, w);
    return new ort.Tensor(spec.type as 'float32', data as Float32Array, dims);
  } else if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const t = typedArrayType(value, spec.type);
    if (!t) fail(w, `input "${spec.name}": unsupported typed array ${value.constructor.name}`);
    if (!convertible(t, spec.type)) fail(w, `input "${spec.name}" holds ${t} values but the model's input is ${spec.type}`);
    dims = inferDims(spec, (value as TypedArray).length, w);
    data = convertArray(value as TypedArray, t, spec.type);
  } else if (value && typeof value === 'object' && 'data' in value && ('dims' in value || 'shape' in value)) {
    const o = value as { dtype?: unknown; type?: unknown; dims?: unknown; shape?: unknown; data: unknown };
    const rawDims = o.dims ?? o.shape;
    if (!isDimsArray(rawDims)) fail(w, `input "${spec.name}": "dims" must be an array of non-negative integers`);
    dims = [...rawDims];
    const declared = o.dtype ?? o.type;
    let dtype = spec.type;
    if (declared !== undefined) {
      if (typeof declared !== 'string') fail(w, `input "${spec.name}": "dtype" must be a string`);
      dtype = DTYPE_ALIASES[declared.toLowerCase()] ?? declared.toLowerCase();
      if (!TYPES[dtype]) fail(w, `input "${spec.name}": unknown dtype "${declared}"`);
      if (!convertible(dtype, spec.type)) fail(w, `input "${spec.name}" has dtype ${dtype} but the model's input is ${spec.type}`);
    }
    const n = product(dims);
    if (ArrayBuffer.isView(o.data) && !(o.data instanceof DataView)) {
      const t = typedArrayType(o.data, dtype) ?? dtype;
      if (!convertible(t, spec.type)) fail(w, `input "${spec.name}" holds ${t} values but the model's input is ${spec.type}`);
      data = convertArray(o.data as TypedArray, t, spec.type);
    } else if (Array.isArray(o.data)) {
      const flat = o.data.flat(Infinity) as unknown[];
      data = flattenNested(flat, [flat.length], typeInfo(dtype, () => spec.name), dtype, spec.name, w);
      data = convertArray(data, dtype, spec.type);
    } else fail(w, `input "${spec.name}": "data" must be an array or a typed array`);
    if (data.length !== n) fail(w, `input "${spec.name}": "data" has ${data.length} values but dims ${fmtDims(dims)} need ${n}`);
  } else {
    fail(w, `input "${spec.name}" is ${describeValue(value)}: give a nested array, a typed array or {dtype, dims, data}`);
  }
  checkShape(spec, dims, w, symbols);
  return new ort.Tensor(spec.type as 'float32', data as Float32Array, dims);
}

/** All inputs of one sample from an object keyed by input name. */
export function sampleFromObject(obj: unknown, inputs: InputSpec[], w: Where): Record<string, ort.Tensor> {
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) fail(w, `"inputs" must be an object keyed by input name`);
  const byName = new Map(inputs.map((i) => [i.name, i]));
  const symbols = new Map<string, { size: number; input: string }>();
  const feeds: Record<string, ort.Tensor> = {};
  for (const [name, value] of Object.entries(obj as Record<string, unknown>)) {
    const spec = byName.get(name);
    if (!spec) fail(w, `input ${unknownInputMessage(name, inputs)}`);
    feeds[name] = valueToTensor(value, spec, w, symbols);
  }
  const missing = inputs.filter((i) => !(i.name in feeds)).map((i) => `"${i.name}"`);
  if (missing.length) fail(w, `missing input${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (the model's inputs: ${inputs.map((i) => `"${i.name}"`).join(', ')})`);
  return feeds;
}

export function pickLabel(o: Record<string, unknown>, labelKey: string, w?: Where): Sample['label'] {
  const key = o[labelKey] !== undefined || labelKey !== 'label' ? labelKey : 'labels';
  const v = o[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as Float32Array, Number);
  // A label that is there but cannot be used is an error, not a sample quietly left unlabeled.
  if (w) fail(w, `"${key}" must be a number, a string or a list of numbers (found ${Array.isArray(v) ? 'a nested list' : typeof v})`);
  return undefined;
}
