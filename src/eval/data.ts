/**
 * Calibration and evaluation data: every format becomes Samples (the feeds of one model call, with
 * exact shapes, and an optional label).
 *
 * Formats (chosen by the path):
 * - `random`: synthesized from the model's input types and shapes. Symbolic dims come from
 *   `spec.shapes`; a symbolic first dim not given there is 1 (a sample is one call); any other
 *   symbolic dim missing from `shapes` is an error naming it. Floats are N(0, 1); integer inputs get
 *   small non-negative ints in [0, 100) and bools 0/1, deterministic by seed. Token-id models need
 *   real data: random ids say little about accuracy.
 * - `.jsonl` / `.ndjson`: one sample per line, `{"inputs": {name: value}, "label": …}` (the label key is
 *   `labelKey`, default "label"). A value is a nested array with the exact shape of one call (batch 1:
 *   `"input_ids": [[1, 12, 71]]`) or `{"dtype", "dims", "data"}` with flat or nested data. Integer
 *   inputs are JSON numbers (int64 beyond 2^53 cannot be written exactly in JSON). Blank lines are skipped.
 * - `.npy`: one array for a model with one input; first axis = samples.
 * - `.npz`: one array per input, named after it (`<input>.npy` inside the zip); first axis = samples;
 *   optional `labels` (or `<labelKey>`) array. Stored and deflated entries, zip64 included.
 * - a directory of `<input>.npy` files, plus an optional `labels.npy` (or `<labelKey>.npy`).
 *   For .npy data, each sample's shape is the array's shape without its first axis; when that has one
 *   axis fewer than the model's input, a batch axis of 1 is put in front.
 *   Supported dtypes: <f4 <f8 <f2 <i8 <i4 <i2 |i1 |u1 <u2 <u4 <u8 |b1, C order. float64 data becomes
 *   float32 when the model wants float32 (integer data widens or narrows to the input's integer type).
 * - a JS module (`.js`, `.mjs`, `.cjs`) whose default export (or `samples` export) is an array, an
 *   iterable, an async iterable, or a function (possibly async) returning one. Items are
 *   `{ inputs: {name: typed array | nested array | {dtype, dims, data} | ort.Tensor}, label? }`. A bare
 *   typed array takes the model's input shape, with a symbolic first dim of 1 and at most one other
 *   symbolic dim inferred from its length. `.ts`/`.mts` modules load only when the current loader
 *   compiles TypeScript (tsx, vitest); plain Node refuses them with a clear error.
 *
 * Every error is CompressError('data') naming the file, the line (JSONL) or sample number, and the input.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inflateRawSync } from 'node:zlib';
import * as ort from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { float16ToFloat32Array, float32ArrayToFloat16 } from '../onnx/float16.js';
import type { TypedArray } from '../onnx/tensor.js';
import { suggest } from '../recipe/suggest.js';
import type { DataSpec } from '../recipe/types.js';
import type { InputSpec, Sample } from './types.js';
import { seededRandom } from '../random.js';

export interface LoadOptions {
  /** The recipe file, to resolve a relative `data` path from its folder. */
  recipeFile?: string;
  /** At most this many samples (in addition to spec.samples; the smaller wins). */
  limit?: number;
  /** Seed for random data (default 0). */
  seed?: number;
  /** Label key in JSONL lines and label array name in .npz / directories (default "label"; "labels" also works). */
  labelKey?: string;
}

/** Samples synthesized for `random` when spec.samples is not given. */
export const DEFAULT_RANDOM_SAMPLES = 16;

export async function loadSamples(spec: DataSpec, inputs: InputSpec[], opts: LoadOptions = {}): Promise<Sample[]> {
  const limits = [spec.samples, opts.limit].filter((v): v is number => typeof v === 'number' && v >= 0);
  const limit = limits.length ? Math.min(...limits) : Infinity;
  if (spec.data === 'random') {
    return randomSamples(inputs, limit === Infinity ? DEFAULT_RANDOM_SAMPLES : limit, opts.seed ?? 0, spec.shapes ?? {});
  }
  const file = isAbsolute(spec.data) ? spec.data : resolve(opts.recipeFile ? dirname(opts.recipeFile) : process.cwd(), spec.data);
  let isDir: boolean;
  try {
    isDir = statSync(file).isDirectory();
  } catch (e) {
    throw new CompressError('io', `cannot read data: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
  const labelKey = opts.labelKey ?? 'label';
  if (isDir) return loadNpyDirectory(file, inputs, limit, labelKey);
  const ext = extname(file).toLowerCase();
  switch (ext) {
    case '.jsonl':
    case '.ndjson':
      return loadJsonl(file, inputs, limit, labelKey);
    case '.npy':
      return loadNpyFile(file, inputs, limit);
    case '.npz':
      return loadNpz(file, inputs, limit, labelKey);
    case '.js':
    case '.mjs':
    case '.cjs':
    case '.ts':
    case '.mts':
    case '.cts':
      return loadModule(file, inputs, limit, labelKey);
    default:
      throw new CompressError(
        'data',
        `unsupported data format "${ext || '(no extension)'}": use .jsonl, .npy, .npz, a folder of <input>.npy files, a .js/.mjs module, or 'random'`,
        { file },
      );
  }
}

// ------------------------------------------------------------------------------------------ types

type Elem = 'float' | 'int' | 'bool';

interface TypeInfo {
  elem: Elem;
  make: (n: number) => TypedArray;
}

const TYPES: Record<string, TypeInfo> = {
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
const DTYPE_ALIASES: Record<string, string> = { float: 'float32', double: 'float64', half: 'float16', long: 'int64', int: 'int32', boolean: 'bool' };

function typeInfo(type: string, where: () => string): TypeInfo {
  const t = TYPES[type];
  if (!t) throw new CompressError('data', `${where()}: inputs of type ${type} are not supported as data`);
  return t;
}

function product(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

function fmtDims(dims: readonly (number | string)[]): string {
  return `[${dims.join(', ')}]`;
}

/** Converts values between element types (float16 is held as bits). Float → integer is refused by the callers. */
function convertArray(src: TypedArray, srcType: string, dstType: string): TypedArray {
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

function convertible(srcType: string, dstType: string): boolean {
  if (srcType === dstType) return true;
  const s = TYPES[srcType]?.elem;
  const d = TYPES[dstType]?.elem;
  if (!s || !d) return false;
  return !(s === 'float' && d !== 'float');
}

// ------------------------------------------------------------------------------------------ errors

interface Where {
  file?: string;
  line?: number;
  column?: number;
  /** 1-based sample number. */
  sample: number;
}

function fail(w: Where, message: string): never {
  throw new CompressError('data', `sample ${w.sample}: ${message}`, w.file ? { file: w.file, line: w.line, column: w.column } : {});
}

function unknownInputMessage(name: string, inputs: InputSpec[], what = 'input'): string {
  const names = inputs.map((i) => i.name);
  const s = suggest(name, names);
  return `"${name}" is not an ${what} of the model${s ? ` (did you mean "${s}"?)` : ''}; its inputs are ${names.map((n) => `"${n}"`).join(', ')}`;
}

// ------------------------------------------------------------------------------------------ values

/** Checks a value's shape against the input's dims; symbolic dims must agree across the inputs of one sample. */
function checkShape(spec: InputSpec, dims: readonly number[], w: Where, symbols: Map<string, { size: number; input: string }>): void {
  if (spec.dims.length === 0) return; // no shape information
  const expect = fmtDims(spec.dims);
  if (dims.length !== spec.dims.length) {
    const hint =
      dims.length === spec.dims.length - 1 && (typeof spec.dims[0] === 'string' || spec.dims[0] === 1)
        ? ' (a sample is the feeds of one model call: add the batch axis, e.g. [[…]] for a batch of 1)'
        : '';
    fail(w, `input "${spec.name}" has shape ${fmtDims(dims)} (rank ${dims.length}) but the model expects ${expect} (rank ${spec.dims.length})${hint}`);
  }
  spec.dims.forEach((d, i) => {
    if (typeof d === 'number') {
      if (dims[i] !== d) fail(w, `input "${spec.name}" has shape ${fmtDims(dims)} but the model expects ${expect} (dim ${i} must be ${d})`);
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
    data = flattenNested(value, dims, info, spec.type, spec.name, w);
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
function sampleFromObject(obj: unknown, inputs: InputSpec[], w: Where): Record<string, ort.Tensor> {
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

function pickLabel(o: Record<string, unknown>, labelKey: string): Sample['label'] {
  const v = o[labelKey] ?? (labelKey === 'label' ? o.labels : undefined);
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (Array.isArray(v) && v.every((x) => typeof x === 'number')) return v as number[];
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as Float32Array, Number);
  return undefined;
}

// ------------------------------------------------------------------------------------------ JSONL

function loadJsonl(file: string, inputs: InputSpec[], limit: number, labelKey: string): Sample[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new CompressError('io', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
  const lines = text.split('\n');
  const samples: Sample[] = [];
  for (let i = 0; i < lines.length && samples.length < limit; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line.trim() === '') continue;
    const w: Where = { file, line: i + 1, sample: samples.length + 1 };
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      const err = locateJsonError(line);
      throw new CompressError('data', `sample ${w.sample}: invalid JSON: ${err.message}`, { file, line: i + 1, column: err.index + 1 });
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) fail(w, `a line must be a JSON object {"inputs": {…}, "${labelKey}": …}`);
    const o = obj as Record<string, unknown>;
    if (!('inputs' in o)) {
      const keys = Object.keys(o);
      const s = suggest('inputs', keys);
      fail(w, `no "inputs" object${s ? ` (found "${s}")` : ''}: a line is {"inputs": {${inputs.map((x) => `"${x.name}": …`).join(', ')}}, "${labelKey}": …}`);
    }
    samples.push({ feeds: sampleFromObject(o.inputs, inputs, w), label: pickLabel(o, labelKey) });
  }
  return samples;
}

/** Where JSON.parse failed (Node 20's messages carry no position): a small validating scanner. */
export function locateJsonError(s: string): { index: number; message: string } {
  let i = 0;
  class Stop {
    constructor(readonly index: number, readonly message: string) {}
  }
  const ch = () => (i < s.length ? `'${s[i]}'` : 'end of line');
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{') {
      i++;
      ws();
      if (s[i] === '}') return void i++;
      for (;;) {
        ws();
        if (s[i] !== '"') throw new Stop(i, `expected a "key" but found ${ch()}`);
        string();
        ws();
        if (s[i] !== ':') throw new Stop(i, `expected ':' but found ${ch()}`);
        i++;
        value();
        ws();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === '}') return void i++;
        throw new Stop(i, `expected ',' or '}' but found ${ch()}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (s[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === ']') return void i++;
        throw new Stop(i, `expected ',' or ']' but found ${ch()}`);
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(s.slice(i));
      if (!m) throw new Stop(i, `invalid number`);
      i += m[0].length;
      return;
    }
    for (const lit of ['true', 'false', 'null']) {
      if (s.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    throw new Stop(i, `expected a value but found ${ch()}`);
  };
  const string = () => {
    const start = i;
    i++;
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\') i++;
      else if (s.charCodeAt(i) < 0x20) throw new Stop(i, 'control character in a string');
      i++;
    }
    if (i >= s.length) throw new Stop(start, 'unterminated string');
    i++;
  };
  try {
    value();
    ws();
    if (i < s.length) throw new Stop(i, `unexpected ${ch()} after the end of the value`);
    return { index: 0, message: 'unparsable JSON' };
  } catch (e) {
    if (e instanceof Stop) return { index: Math.min(e.index, s.length), message: e.message };
    throw e;
  }
}

// ------------------------------------------------------------------------------------------ .npy / .npz

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

/** Reads a zip archive's entries (stored or deflated; zip64 aware). Values are decompressed lazily. */
export function readZip(bytes: Uint8Array, file?: string): Map<string, () => Uint8Array> {
  const err = (m: string, offset?: number) => new CompressError('data', m, { file, offset });
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (o: number) => dv.getUint16(o, true);
  const u32 = (o: number) => dv.getUint32(o, true);
  const u64 = (o: number) => Number(dv.getBigUint64(o, true));
  let eocd = -1;
  for (let o = bytes.length - 22; o >= Math.max(0, bytes.length - 22 - 0xffff); o--) {
    if (u32(o) === 0x06054b50) {
      eocd = o;
      break;
    }
  }
  if (eocd < 0) throw err('not a zip archive (no end of central directory record): an .npz is written by numpy.savez');
  let entries = u16(eocd + 10);
  let cdOffset = u32(eocd + 16);
  if ((entries === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && u32(eocd - 20) === 0x07064b50) {
    const z64 = u64(eocd - 20 + 8);
    if (u32(z64) !== 0x06064b50) throw err('bad zip64 end of central directory record', z64);
    entries = u64(z64 + 32);
    cdOffset = u64(z64 + 48);
  }
  const out = new Map<string, () => Uint8Array>();
  let p = cdOffset;
  for (let e = 0; e < entries; e++) {
    if (p + 46 > bytes.length || u32(p) !== 0x02014b50) throw err('bad zip central directory entry', p);
    const flags = u16(p + 8);
    const method = u16(p + 10);
    let compSize = u32(p + 20);
    let size = u32(p + 24);
    const nameLen = u16(p + 28);
    const extraLen = u16(p + 30);
    const commentLen = u16(p + 32);
    let local = u32(p + 42);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field: the 64-bit values of whichever of the 32-bit fields are 0xFFFFFFFF, in this order.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = u16(x);
      const len = u16(x + 2);
      if (id === 0x0001) {
        let f = x + 4;
        if (size === 0xffffffff) (size = u64(f)), (f += 8);
        if (compSize === 0xffffffff) (compSize = u64(f)), (f += 8);
        if (local === 0xffffffff) local = u64(f);
      }
      x += 4 + len;
    }
    p = xEnd + commentLen;
    if (flags & 1) throw err(`zip entry "${name}" is encrypted`);
    out.set(name, () => {
      if (u32(local) !== 0x04034b50) throw err(`bad zip local header for "${name}"`, local);
      const start = local + 30 + u16(local + 26) + u16(local + 28);
      const raw = bytes.subarray(start, start + compSize);
      if (method === 0) return raw;
      if (method === 8) {
        const b = inflateRawSync(raw);
        if (b.length !== size) throw err(`zip entry "${name}" inflates to ${b.length} bytes, expected ${size}`);
        return b;
      }
      throw err(`zip entry "${name}" uses compression method ${method}; only stored (0) and deflate (8) are supported`);
    });
  }
  return out;
}

function readBytes(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CompressError('io', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
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

function loadNpyFile(file: string, inputs: InputSpec[], limit: number): Sample[] {
  if (inputs.length !== 1) {
    throw new CompressError('data', `a single .npy feeds a model with one input; this model has ${inputs.length} (${inputs.map((i) => `"${i.name}"`).join(', ')}): use an .npz or a folder of <input>.npy files`, { file });
  }
  const arr = parseNpy(readBytes(file), file);
  const m = new Map([[inputs[0].name, { arr: () => arr, entry: 'array' }]]);
  return samplesFromArrays(m, inputs, limit, 'label', file);
}

function loadNpz(file: string, inputs: InputSpec[], limit: number, labelKey: string): Sample[] {
  const zip = readZip(readBytes(file), file);
  const arrays = new Map<string, { arr: () => NpyArray; entry: string }>();
  for (const [entry, read] of zip) {
    if (entry.endsWith('/')) continue;
    const name = entry.endsWith('.npy') ? entry.slice(0, -4) : entry;
    arrays.set(name, { arr: () => parseNpy(read(), `${file}[${entry}]`), entry: `array "${name}"` });
  }
  return samplesFromArrays(arrays, inputs, limit, labelKey, file);
}

function loadNpyDirectory(dir: string, inputs: InputSpec[], limit: number, labelKey: string): Sample[] {
  const arrays = new Map<string, { arr: () => NpyArray; entry: string }>();
  for (const f of readdirSync(dir).sort()) {
    if (!f.endsWith('.npy')) continue;
    const path = join(dir, f);
    arrays.set(f.slice(0, -4), { arr: () => parseNpy(readBytes(path), path), entry: f });
  }
  if (arrays.size === 0) throw new CompressError('data', `the folder has no .npy files: put one <input>.npy per model input there (${inputs.map((i) => `${i.name}.npy`).join(', ')})`, { file: dir });
  return samplesFromArrays(arrays, inputs, limit, labelKey, dir);
}

// ------------------------------------------------------------------------------------------ modules

async function loadModule(file: string, inputs: InputSpec[], limit: number, labelKey: string): Promise<Sample[]> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?ts$/.test(file)) {
      throw new CompressError('data', 'cannot import a TypeScript data module: this Node loader does not compile TypeScript (run under tsx, or use a .js/.mjs module)', { file });
    }
    throw new CompressError('data', `cannot import the data module: ${(e as Error).message}`, { file }, { cause: e });
  }
  let src: unknown = mod.default ?? mod.samples;
  if (src === undefined) throw new CompressError('data', 'the module has no default export (or "samples" export) of samples', { file });
  if (typeof src === 'function') {
    try {
      src = await (src as () => unknown)();
    } catch (e) {
      throw new CompressError('data', `the module's sample function threw: ${(e as Error).message}`, { file }, { cause: e });
    }
  }
  const iterable = src as Partial<AsyncIterable<unknown> & Iterable<unknown>> | null;
  if (!iterable || (typeof iterable[Symbol.iterator] !== 'function' && typeof iterable[Symbol.asyncIterator] !== 'function')) {
    throw new CompressError('data', 'the default export must be an array, an iterable or an async iterable of samples, or a function returning one', { file });
  }
  const samples: Sample[] = [];
  if (limit <= 0) return samples;
  for await (const item of iterable as AsyncIterable<unknown>) {
    const w: Where = { file, sample: samples.length + 1 };
    if (!item || typeof item !== 'object' || !('inputs' in item)) fail(w, `a sample must be an object {inputs: {…}, label?}`);
    const o = item as Record<string, unknown>;
    samples.push({ feeds: sampleFromObject(o.inputs, inputs, w), label: pickLabel(o, labelKey) });
    if (samples.length >= limit) break;
  }
  return samples;
}

// ------------------------------------------------------------------------------------------ random

const rng = seededRandom;

/** Random samples from the inputs' types and shapes (see the file comment). */
export function randomSamples(inputs: InputSpec[], count: number, seed: number, shapes: Record<string, number>): Sample[] {
  const dimsOf = (spec: InputSpec) =>
    spec.dims.map((d, i) => {
      if (typeof d === 'number') return d;
      const given = shapes[d];
      if (given !== undefined) return given;
      if (i === 0) return 1;
      throw new CompressError(
        'data',
        `random data: input "${spec.name}" has symbolic dim "${d}" (shape ${fmtDims(spec.dims)}): give its size in shapes, e.g. shapes: { ${d === '?' ? '<name>' : d}: 16 }`,
      );
    });
  const plan = inputs.map((spec) => ({ spec, dims: dimsOf(spec), info: typeInfo(spec.type, () => `random data: input "${spec.name}"`) }));
  const next = rng(seed * 0x9e3779b1 + 1);
  const normal = () => {
    const u = 1 - next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  };
  const samples: Sample[] = [];
  for (let s = 0; s < count; s++) {
    const feeds: Record<string, ort.Tensor> = {};
    for (const { spec, dims, info } of plan) {
      const n = product(dims);
      let data: TypedArray;
      if (info.elem === 'float') {
        const f = new Float32Array(n);
        for (let i = 0; i < n; i++) f[i] = normal();
        data = convertArray(f, 'float32', spec.type);
      } else {
        const hi = info.elem === 'bool' ? 2 : 100;
        const f = new Float64Array(n);
        for (let i = 0; i < n; i++) f[i] = Math.floor(next() * hi);
        data = convertArray(f, 'float64', spec.type);
      }
      feeds[spec.name] = new ort.Tensor(spec.type as 'float32', data as Float32Array, dims);
    }
    samples.push({ feeds });
  }
  return samples;
}

// ------------------------------------------------------------------------------------------ stacking

/**
 * One feed holding all samples, concatenated along axis 0 — when every input's first dim is symbolic
 * and the samples agree on type and all other dims. Labels are dropped (keep them from the samples).
 * Returns undefined when the samples cannot be stacked.
 */
export function stackSamples(samples: Sample[], inputs: InputSpec[]): Sample | undefined {
  if (samples.length === 0) return undefined;
  if (samples.length === 1) return { feeds: samples[0].feeds };
  const feeds: Record<string, ort.Tensor> = {};
  for (const spec of inputs) {
    if (spec.dims.length === 0 || typeof spec.dims[0] === 'number') return undefined;
    const first = samples[0].feeds[spec.name];
    if (!first || first.dims.length === 0 || first.type === 'string') return undefined;
    const tail = first.dims.slice(1);
    let rows = 0;
    for (const s of samples) {
      const t = s.feeds[spec.name];
      if (!t || t.type !== first.type || t.dims.length !== first.dims.length) return undefined;
      for (let i = 1; i < t.dims.length; i++) if (t.dims[i] !== first.dims[i]) return undefined;
      rows += t.dims[0];
    }
    const firstData = first.data as TypedArray;
    const Ctor = firstData.constructor as new (n: number) => TypedArray;
    const per = product(tail);
    const out = new Ctor(rows * per);
    let at = 0;
    for (const s of samples) {
      const d = s.feeds[spec.name].data as TypedArray;
      (out as Float32Array).set(d as Float32Array, at);
      at += d.length;
    }
    feeds[spec.name] = new ort.Tensor(first.type as 'float32', out as Float32Array, [rows, ...tail]);
  }
  return { feeds };
}
