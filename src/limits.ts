/**
 * Limits on the work hostile or broken input can ask for (docs/limits.md lists them). Each has a
 * default sized for real projects and can be changed with an environment variable
 * `ONNX_COMPRESS_LIMIT_<NAME>` (e.g. ONNX_COMPRESS_LIMIT_SAMPLES=500000), read when a limit is used.
 */
import { CompressError, type ErrorLocation, type ErrorKind } from './errors.js';

export const LIMIT_DEFAULTS = {
  /** Bytes of a recipe file. */
  RECIPE_BYTES: 256 << 10,
  /** Nesting of mappings and sequences in a recipe. */
  RECIPE_DEPTH: 64,
  /** Entries of one mapping or list in a recipe (parsing is quadratic in them). */
  RECIPE_ENTRIES: 1000,
  /** YAML aliases (*name) a recipe may use (yaml's maxAliasCount; billion-laughs recipes hit it). */
  RECIPE_ALIASES: 100,
  /** Builds (models + variants) in one recipe. */
  BUILDS: 1000,
  /** `samples` of calibration / evaluate / distill data, and items taken from a data module. */
  SAMPLES: 100_000,
  /** `evaluate.runs` (timed runs per model). */
  RUNS: 10_000,
  /** `distill.steps` (optimizer steps). */
  DISTILL_STEPS: 1_000_000,
  /** Problems listed for one recipe (more are counted, not listed). */
  RECIPE_ISSUES: 100,
  /** Bytes of the synthetic verification input (all inputs together), checked before allocating it. */
  INPUT_BYTES: 256 << 20,
  /** Bytes one .npz entry may inflate to. */
  NPZ_ENTRY_BYTES: 512 << 20,
  /** Inflated / compressed size of one .npz entry (entries over 1 MiB); zero-filled bombs reach ~1000. */
  NPZ_RATIO: 200,
  /** Milliseconds a data module may take to return its samples or yield the next one. */
  DATA_MODULE_MS: 120_000,
  /** Milliseconds onnxruntime may take to load and run a model once in the isolated child (plus 50 ms per MiB of model). */
  ISOLATE_MS: 60_000,
  /** Memory the isolated onnxruntime child may use (plus 8× the model's size). */
  ISOLATE_MEMORY_BYTES: 2 * 2 ** 30,
  /** Nesting of arrays / objects in one JSONL line. */
  JSON_DEPTH: 64,
} as const;

export type LimitName = keyof typeof LIMIT_DEFAULTS;

/** The limit's value: the environment's override when it is a positive number, else the default. */
export function limit(name: LimitName): number {
  const raw = process.env[`ONNX_COMPRESS_LIMIT_${name}`];
  const v = raw === undefined ? NaN : Number(raw);
  return Number.isFinite(v) && v > 0 ? v : LIMIT_DEFAULTS[name];
}

/** The error for a limit exceeded: says what, by how much, and how to raise it. */
export function overLimit(kind: ErrorKind, name: LimitName, what: string, where: ErrorLocation = {}): CompressError {
  return new CompressError(kind, `${what} (limit ${limit(name)}; set ONNX_COMPRESS_LIMIT_${name} to change it)`, where);
}

const UNITS = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function humanSize(n: number): string {
  let i = 0;
  while (n >= 1024 && i < UNITS.length - 1) (n /= 1024), i++;
  return i === 0 ? `${n} bytes` : `${n.toFixed(1)} ${UNITS[i]}`;
}

/** Bytes per element of ORT tensor types (string: a pointer's worth, for budgeting only). */
export const ELEMENT_BYTES: Record<string, number> = {
  float32: 4, float64: 8, float16: 2, bfloat16: 2, int64: 8, uint64: 8, int32: 4, uint32: 4,
  int16: 2, uint16: 2, int8: 1, uint8: 1, bool: 1, string: 8,
};

/**
 * Element count of `dims`, refusing negative, fractional or non-finite dims and products past
 * Number.MAX_SAFE_INTEGER, before anything is allocated. `name` is the input, for the message.
 */
export function checkedElementCount(dims: readonly number[], name: string, where: ErrorLocation = {}): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new CompressError('model', `input "${name}" declares an invalid dim ${d} in shape [${dims.join(', ')}]`, where);
    }
    n *= d;
    if (!Number.isSafeInteger(n)) throw new CompressError('model', `input "${name}" declares shape [${dims.join(', ')}], whose element count overflows`, where);
  }
  return n;
}

/** Describes anything thrown (null, a string, an object with a throwing getter) without throwing itself. */
export function describeThrown(e: unknown): string {
  if (e === null) return 'null';
  if (e === undefined) return 'undefined';
  try {
    if (e instanceof Error) return e.message || e.name || 'an Error with no message';
    if (typeof e === 'string') return e;
    if (typeof e === 'object') {
      const m = (e as { message?: unknown }).message;
      if (typeof m === 'string') return m;
      return Object.prototype.toString.call(e);
    }
    return String(e);
  } catch {
    return 'a value that cannot be described (its accessors throw)';
  }
}

/**
 * Refuses inputs whose declared shapes would need more than the INPUT_BYTES limit (all together), or
 * whose dims are negative or overflow — before anything is allocated. `what` says what is being built.
 */
export function checkInputBudget(inputs: readonly { name: string; type: string; dims: readonly number[] }[], what: string, where: ErrorLocation = {}): void {
  const max = limit('INPUT_BYTES');
  let total = 0;
  for (const i of inputs) {
    const bytes = checkedElementCount(i.dims, i.name, where) * (ELEMENT_BYTES[i.type] ?? 8);
    total += bytes;
    if (total > max) {
      throw overLimit(
        'model',
        'INPUT_BYTES',
        `${what}: input "${i.name}" of shape [${i.dims.join(', ')}] (${i.type}) needs ${humanSize(bytes)}, over the ${humanSize(max)} budget`,
        where,
      );
    }
  }
}

/** Whether checkInputBudget would accept these inputs (for callers that skip rather than fail). */
export function withinInputBudget(inputs: readonly { name: string; type: string; dims: readonly number[] }[]): boolean {
  try {
    checkInputBudget(inputs, '');
    return true;
  } catch {
    return false;
  }
}
