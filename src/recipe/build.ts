/**
 * Recipe data → builds: the layers of a build (defaults, model, variant) deep-merged, each section
 * normalized (defaults filled in, paths made absolute), each step's block by its config from the step
 * registry, and every key's recipe position kept for later messages.
 */
import path from 'node:path';
import type { NormalizeContext } from '../transforms/step-config.js';
import { STEP_REGISTRY, type Steps } from '../transforms/registry.js';
import { getIn, mergeLayer, type Obj } from './objects.js';
import type { Seg, Source } from './source.js';
import { suggest } from '../suggest.js';
import { unsupportedFeatures } from './support.js';
import type { Budget, Build, DataSpec, EvaluateSpec, SourcePosition } from './types.js';

export interface Layer {
  at: Seg[];
  config: Obj;
}

const STEPS = new Set<string>(STEP_REGISTRY.map((s) => s.name));

type Resolve = (p: string) => string;

export function checkUnsupported(src: Source, data: Record<string, unknown>, scopes: Seg[][]): void {
  for (const scope of scopes) {
    for (const { path: feature, reason } of unsupportedFeatures) {
      const [keys, value] = feature.split('=', 2) as [string, string | undefined];
      const at = [...scope, ...keys.split('.')];
      const found = getIn(data, at);
      if (found === undefined || found === null) continue; // null removes an inherited step: that is fine
      if (value !== undefined && String(found) !== value) continue;
      const what = value === undefined ? 'not supported yet' : `${JSON.stringify(found)} is not supported yet`;
      src.report(at, what + (reason ? ` — ${reason}` : ''), value === undefined ? 'key' : 'value');
    }
  }
}

export function makeBuild(src: Source, data: Obj, name: string, variant: string | undefined, layers: Layer[]): Build {
  const scope = layers[layers.length - 1].at;
  const model = ['models', name];
  const origins = new Map<string, Seg[]>(); // merged key path → the recipe key it came from
  const merged = layers.reduce<Obj>((acc, l) => mergeLayer(acc, l.config, l.at, [], origins), {});
  const dir = path.dirname(src.file);
  const originOf = (keys: string[]): Seg[] => {
    for (let n = keys.length; n > 0; n--) {
      const o = origins.get(keys.slice(0, n).join('.'));
      // Below a merged leaf (an array's items), the rest of the path is inside that value.
      if (o) return [...o, ...keys.slice(n).map((k) => (/^\d+$/.test(k) ? Number(k) : k))];
    }
    return scope;
  };
  // A problem written outside this build's own entry (in defaults, or the model for a variant) names the build.
  const problem = (keys: string[], message: string, at: 'key' | 'value' = 'value') => {
    const origin = originOf(keys);
    const inScope = scope.every((s, i) => origin[i] === s);
    src.report(origin, message, at, inScope ? '' : ` (in ${scope.join('.')})`);
  };
  const abs = (p: string) => path.resolve(dir, p);
  const dataPath = (p: string) => (p === 'random' ? p : abs(p));

  // Outputs are not inherited: a variant's default name derives from the model's name, not its output.
  const outputAt = [...scope, 'output'];
  const written = getIn(data, outputAt);
  let output = normalizeOutput(src, outputAt, written, name, variant);
  const layout = (merged.layout as string | undefined) ?? 'default';

  const c = merged as Record<string, Obj | undefined>; // sections; the schema has checked their shape
  for (const [section, key] of [['calibration', 'data'], ['evaluate', 'data']] as const) {
    if (c[section] && c[section][key] === undefined) problem([section], `missing required key "${key}"`, 'key');
  }
  for (const section of ['calibration', 'evaluate'] as const) {
    const fed = new Map<string, string>(); // input → the output carried into it
    for (const [output, input] of Object.entries((c[section]?.carry as Record<string, string> | undefined) ?? {})) {
      const first = fed.get(input);
      if (first !== undefined) problem([section, 'carry', output], `input "${input}" is already carried from "${first}"`, 'key');
      fed.set(input, output);
    }
  }
  const calibration = c.calibration?.data !== undefined ? dataSpec(c.calibration, dataPath) : undefined;
  const ctx: NormalizeContext = {
    problem,
    ...(calibration && { calibration: calibration.data }),
    ...(calibration?.shapes && { calibrationShapes: calibration.shapes }),
    modelPath: (p) => (p === 'original' ? p : abs(p)),
    dataPath,
  };
  const steps: Steps = {};
  for (const { name: step, config } of STEP_REGISTRY) {
    const written = c[step] as Obj | boolean | undefined;
    // `<step>: true` is an empty block; a default-on step runs with its defaults unless set to false.
    const block = written === true || (written === undefined && config.enabledByDefault) ? {} : written;
    if (!block) continue;
    const missing = config.required.filter((k) => block[k] === undefined);
    for (const k of missing) problem([step], `missing required key "${k}"`, 'key');
    if (missing.length) continue;
    const params = config.normalize(block, ctx);
    if (params) (steps as Record<string, unknown>)[step] = params;
  }

  const pick = pickOrder(merged.pick as Record<string, string[]> | undefined, Object.keys((getIn(data, [...model, 'variants']) as Obj | undefined) ?? {}), problem);
  const source = abs(String(getIn(data, [...model, 'source'])));
  if (layout === 'transformers.js' && written === undefined) output = transformersJsOutput(source, steps);

  const build: Build = {
    name,
    ...(variant !== undefined && { variant }),
    id: variant === undefined ? name : `${name}.${variant}`,
    source,
    ...(Array.isArray(getIn(data, [...model, 'externalDataDirs'])) && { externalDataDirs: (getIn(data, [...model, 'externalDataDirs']) as unknown[]).map((d) => abs(String(d))) }),
    output,
    // transformers.js computes its files' paths itself: they must be there, under their own names.
    emit: (merged.emit as Build['emit']) ?? (layout === 'transformers.js' ? 'always' : 'imported'),
    ...(pick && { pick }),
    steps,
    ...(calibration && { calibration }),
    ...(c.evaluate?.data !== undefined && { evaluate: evaluateSpec(c.evaluate, dataPath) }),
    device: (merged.device as Build['device']) ?? 'auto',
    ...(merged.webCheck === false && { webCheck: false }),
    ...(c.budget && { budget: budget(c.budget) }),
    positions: {},
  };
  if (steps.quantize?.dtype === 'auto' && !build.budget) {
    problem(['quantize', 'dtype'], 'dtype auto picks the smallest precision that meets the budget: add a budget (e.g. budget: { maxAccuracyDrop: 0.01 } with evaluate data)', 'value');
  }

  const at = (keys: Seg[]): SourcePosition => {
    const p = src.position(keys, 'key');
    return { line: p.line, column: p.col, path: keys.join('.') };
  };
  build.positions[''] = at(scope);
  build.positions.source = at([...model, 'source']);
  if (written !== undefined) build.positions.output = at(outputAt);
  for (const [keys, origin] of origins) {
    const first = keys.split('.')[0];
    build.positions[STEPS.has(first) ? `steps.${keys}` : keys] = at(origin);
  }
  return build;
}

function dataSpec(d: Obj, dataPath: Resolve): DataSpec {
  return {
    data: dataPath(String(d.data)),
    samples: (d.samples as number) ?? 128,
    ...(d.shapes !== undefined && { shapes: { ...(d.shapes as Record<string, number>) } }),
    ...(d.carry !== undefined && { carry: { ...(d.carry as Record<string, string>) } }),
  };
}

function evaluateSpec(e: Obj, dataPath: Resolve): EvaluateSpec {
  return {
    data: dataPath(String(e.data)),
    ...(e.samples !== undefined && { samples: e.samples as number }),
    ...(e.shapes !== undefined && { shapes: { ...(e.shapes as Record<string, number>) } }),
    ...(e.carry !== undefined && { carry: { ...(e.carry as Record<string, string>) } }),
    ...(e.labels !== undefined && { labels: e.labels as boolean }),
    ...(e.output !== undefined && { output: e.output as string }),
    labelKey: (e.labelKey as string) ?? 'label',
    runs: (e.runs as number) ?? 20,
    threads: (e.threads as number) ?? 1,
    web: (e.web as boolean) ?? false,
  };
}

function budget(b: Obj): Budget {
  const out: Budget = { onFail: (b.onFail as Budget['onFail']) ?? 'error' };
  for (const k of ['maxAccuracyDrop', 'minAgreement', 'minCosine', 'maxRelRms', 'maxAbsError'] as const) if (b[k] !== undefined) out[k] = b[k] as number;
  if (b.output !== undefined) out.output = String(b.output);
  if (b.maxBytes !== undefined) out.maxBytes = parseBytes(b.maxBytes as number | string);
  return out;
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, m: 1e6, g: 1e9, ki: 2 ** 10, mi: 2 ** 20, gi: 2 ** 30 };

/** 2MB → 2000000, 1.5 MiB → 1572864; the schema has already checked the form. */
export function parseBytes(v: number | string): number {
  if (typeof v === 'number') return v;
  const [, num, unit] = /^\s*([\d.]+)\s*([kmg]i?)?b?\s*$/i.exec(v)!;
  return Math.round(Number(num) * UNITS[(unit ?? '').toLowerCase()]);
}

/**
 * transformers.js's file for a precision: `onnx/<source stem><suffix>.onnx`, the suffix as its
 * `DEFAULT_DTYPE_SUFFIX_MAPPING` has it (fp32 '', fp16 _fp16, q8 _quantized, int8 _int8, uint8 _uint8,
 * q4 _q4, q4f16 _q4f16). A dtype written as a transformers.js name keeps that name's suffix.
 */
function transformersJsOutput(source: string, steps: Steps): string {
  const stem = path.basename(source).replace(/\.onnx$/i, '');
  const q = steps.quantize;
  const SUFFIX: Record<string, string> = { q8: '_quantized', q4: '_q4', q4f16: '_q4f16', fp16: '_fp16', float16: '_fp16', int8: '_int8', uint8: '_uint8' };
  const name = !q ? undefined : (q.alias ?? ((q.dtype === 'int4' || q.dtype === 'uint4') && q.float16 ? 'q4f16' : q.dtype === 'int4' || q.dtype === 'uint4' ? 'q4' : q.dtype));
  return `onnx/${stem}${name ? SUFFIX[name] : ''}.onnx`;
}

function normalizeOutput(src: Source, at: Seg[], written: unknown, name: string, variant?: string): string {
  if (written === undefined) return variant === undefined ? `${name}.onnx` : `${name}.${variant}.onnx`;
  const raw = String(written);
  const posix = raw.replace(/\\/g, '/');
  if (path.isAbsolute(raw) || path.win32.isAbsolute(raw) || posix.split('/').includes('..')) {
    src.report(at, `output must stay inside the output directory, found ${JSON.stringify(raw)}`, 'value');
    return raw;
  }
  const out = path.posix.normalize(posix);
  if (out === '.' || out.endsWith('/')) src.report(at, `expected a file name, found ${JSON.stringify(raw)}`, 'value');
  return out;
}

export function checkDuplicateOutputs(src: Source, builds: Build[]): void {
  // Lower-cased: on macOS and Windows two names differing in case are one file.
  const seen = new Map<string, Build>();
  for (const b of builds) {
    const key = b.output.toLowerCase();
    const first = seen.get(key);
    if (!first) {
      seen.set(key, b);
      continue;
    }
    // At the output value when it is written, else at the model or variant whose default name collides.
    const where = b.positions.output ?? b.positions[''];
    const message = `output "${b.output}" is also written by ${first.positions[''].path} (line ${positionOf(first, 'output').line})`;
    src.report(where.path.split('.'), message, b.positions.output ? 'value' : 'key');
  }
}


/** Where `keyPath` of a build (e.g. 'steps.quantize.granularity') was written, or its nearest written ancestor. */
export function positionOf(build: Build, keyPath: string): SourcePosition {
  for (let p = keyPath; ; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    if (build.positions[p]) return build.positions[p];
    if (p === '') throw new Error(`build ${build.id} has no position`);
  }
}

const PICK_PRECISIONS = ['int8', 'uint8', 'int4', 'uint4', 'q4f16', 'float16', 'float32', 'mixed'];
const PICK_ALIASES: Record<string, string> = { q8: 'int8', q4: 'int4', fp16: 'float16', fp32: 'float32' };

/**
 * The `pick` block with aliases resolved; an entry that names neither a precision nor one of the model's
 * variants (nor `main`) would never match anything, so it is a recipe error, with a suggestion.
 */
function pickOrder(
  written: Record<string, string[]> | undefined,
  variants: string[],
  problem: (keys: string[], message: string, at?: 'key' | 'value') => void,
): Build['pick'] | undefined {
  if (!written) return undefined;
  const known = [...PICK_PRECISIONS, ...Object.keys(PICK_ALIASES), ...variants, 'main'];
  const out: NonNullable<Build['pick']> = {};
  for (const [tier, list] of Object.entries(written)) {
    out[tier as keyof typeof out] = list.map((entry, i) => {
      if (!known.includes(entry)) {
        const near = suggest(entry, known);
        problem(['pick', tier, String(i)], `"${entry}" is neither a precision (${PICK_PRECISIONS.join(', ')}) nor a variant of this model${variants.length ? ` (${variants.join(', ')})` : ''} or "main"${near ? `; did you mean "${near}"?` : ''}`);
      }
      return PICK_ALIASES[entry] ?? entry;
    });
  }
  return out;
}
