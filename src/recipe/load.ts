import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document } from 'yaml';
import { CompressError } from '../errors.js';
import { suggest } from './suggest.js';
import { dataExtensions, unsupportedFeatures } from './support.js';
import {
  STEP_ORDER,
  type Budget,
  type Build,
  type DataSpec,
  type DistillStep,
  type EvaluateSpec,
  type LowrankStep,
  type PruneStep,
  type QuantizeStep,
  type Recipe,
  type SourcePosition,
} from './types.js';

export interface LoadOptions {
  /** Check that every referenced file exists (default: true for loadRecipe, false for parseRecipe). */
  checkFiles?: boolean;
}

export interface RecipeIssue {
  /** Absolute path of the recipe. */
  file: string;
  line: number;
  column: number;
  /** Key path in the recipe, e.g. `models.spam.quantize.dtype` ('' for the whole file). */
  path: string;
  /** What is wrong, without the location or path. */
  message: string;
}

/** Every problem found in a recipe, at once; `message` has one `file:line:col: path: problem` line per issue. */
export class RecipeError extends CompressError {
  readonly issues: RecipeIssue[];
  constructor(issues: RecipeIssue[]) {
    const [first, ...rest] = issues;
    const head = (first.path ? `${first.path}: ` : '') + first.message;
    super('recipe', [head, ...rest.map(formatIssue)].join('\n'), {
      file: displayPath(first.file),
      line: first.line,
      column: first.column,
    });
    this.name = 'RecipeError';
    this.issues = issues;
  }
}

export function formatIssue(i: RecipeIssue): string {
  return `${displayPath(i.file)}:${i.line}:${i.column}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

/** Reads, validates and normalizes a recipe; checks referenced files unless `checkFiles: false`. */
export async function loadRecipe(file: string, opts: LoadOptions = {}): Promise<Recipe> {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (cause) {
    throw new CompressError('io', `cannot read recipe: ${(cause as Error).message}`, { file: displayPath(abs) }, { cause });
  }
  return parseRecipe(text, abs, { checkFiles: opts.checkFiles ?? true });
}

/** Validates and normalizes recipe text; `file` locates it (relative paths resolve from its folder). */
export function parseRecipe(text: string, file: string, opts: LoadOptions = {}): Recipe {
  const abs = path.resolve(file);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const src = new Source(abs, doc, lines);
  for (const e of doc.errors) src.reportAt(lines.linePos(e.pos[0]), [], `invalid YAML: ${e.message}`);
  src.throwIfAny();

  if (doc.contents === null) src.report([], 'the recipe is empty: expected a mapping with a "models" key', 'value');
  else if (!isMap(doc.contents)) {
    src.report([], `expected a mapping with a "models" key at the top level, found ${describe(doc.toJS())}`, 'value');
  }
  src.throwIfAny();

  let data: Record<string, unknown>;
  try {
    data = doc.toJS();
  } catch (e) {
    src.report([], `invalid YAML: ${(e as Error).message}`, 'value');
    return src.throwIfAny() as never;
  }

  const validate = validator();
  if (!validate(data)) schemaIssues(src, validate.errors ?? []);
  const invalid = src.issues.map((i) => i.path);
  const clean = (prefix: string) => !invalid.some((p) => p === prefix || p.startsWith(prefix + '.'));

  const models = isObject(data.models) ? data.models : {};
  const defaults = isObject(data.defaults) ? data.defaults : {};
  checkUnsupported(src, data, [['defaults']]);
  const builds: Build[] = [];
  for (const [name, model] of Object.entries(models)) {
    if (!isObject(model)) continue;
    const variants = isObject(model.variants) ? model.variants : {};
    checkUnsupported(src, data, [['models', name], ...Object.keys(variants).map((v) => ['models', name, 'variants', v])]);
    if (!clean('defaults') || !clean(`models.${name}`)) continue;
    const base: Layer[] = [
      { at: ['defaults'], config: defaults },
      { at: ['models', name], config: omit(model, ['source', 'output', 'variants']) },
    ];
    builds.push(makeBuild(src, data, name, undefined, base));
    for (const [variant, over] of Object.entries(variants)) {
      if (!isObject(over)) continue;
      const layer = { at: ['models', name, 'variants', variant], config: omit(over, ['output']) };
      builds.push(makeBuild(src, data, name, variant, [...base, layer]));
    }
  }
  checkDuplicateOutputs(src, builds);
  if (opts.checkFiles) checkFiles(src, builds);
  src.throwIfAny();
  return { file: abs, dir: path.dirname(abs), builds };
}

/** Everything that affects the output bytes (steps and calibration), keys sorted, for cache keys. */
export function normalizedStepConfig(build: Build): unknown {
  return sortKeys({ steps: build.steps, calibration: build.calibration });
}

/** Where `keyPath` of a build (e.g. 'steps.quantize.granularity') was written, or its nearest written ancestor. */
export function positionOf(build: Build, keyPath: string): SourcePosition {
  for (let p = keyPath; ; p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '') {
    if (build.positions[p]) return build.positions[p];
    if (p === '') throw new Error(`build ${build.id} has no position`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Source positions and issue collection

type Seg = string | number;
type LinePos = { line: number; col: number };
type YNode = { range?: [number, number, number] | null };
const SEP = '\u0000';

class Source {
  readonly issues: (RecipeIssue & { base: string })[] = [];
  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lines: LineCounter,
  ) {}

  // Every mapping entry's key and value nodes by path, so that positions for hundreds of builds stay cheap.
  private index?: Map<string, { key?: YNode; value?: YNode }>;
  private memo = new Map<string, LinePos>();

  private buildIndex(): Map<string, { key?: YNode; value?: YNode }> {
    const index = new Map<string, { key?: YNode; value?: YNode }>([['', { value: this.doc.contents as YNode }]]);
    const walk = (node: unknown, id: string, depth: number) => {
      if (isAlias(node) && depth < 32) node = node.resolve(this.doc); // an alias shares its anchor's positions
      if (isMap(node)) {
        for (const pair of node.items) {
          const k = id + SEP + (isScalar(pair.key) ? String(pair.key.value) : String(pair.key));
          index.set(k, { key: pair.key as YNode, value: pair.value as YNode });
          walk(pair.value, k, depth + 1);
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => {
          index.set(id + SEP + i, { value: item as YNode });
          walk(item, id + SEP + i, depth + 1);
        });
      }
    };
    walk(this.doc.contents, '', 0);
    return index;
  }

  /** Whether the value at `keyPath` is written as nothing at all (`key:` and no value). */
  isEmpty(keyPath: Seg[]): boolean {
    this.index ??= this.buildIndex();
    const range = this.index.get(keyPath.map((k) => SEP + k).join(''))?.value?.range;
    return !!range && range[1] === range[0];
  }

  /** 'key': where the key is written; 'value': where its value is (the key, when the value is empty). */
  position(keyPath: Seg[], at: 'key' | 'value'): LinePos {
    const id = keyPath.map((k) => SEP + k).join('');
    const memoKey = at + id;
    const known = this.memo.get(memoKey);
    if (known) return known;
    this.index ??= this.buildIndex();
    // A path that is not written (a defaulted key) points at its nearest written ancestor.
    let found = this.index.get(id);
    for (let n = keyPath.length - 1; !found && n >= 0; n--) found = this.index.get(keyPath.slice(0, n).map((k) => SEP + k).join(''));
    const exact = found === this.index.get(id);
    const nonEmpty = (n?: YNode) => (n?.range && n.range[1] > n.range[0] ? n : undefined);
    const node = exact && at === 'value' ? (nonEmpty(found?.value) ?? found?.key) : (found?.key ?? found?.value);
    const pos = node?.range ? this.lines.linePos(node.range[0]) : { line: 1, col: 1 };
    this.memo.set(memoKey, pos);
    return pos;
  }

  report(keyPath: Seg[], message: string, at: 'key' | 'value', note = ''): void {
    this.reportAt(this.position(keyPath, at), keyPath, message, note);
  }

  reportAt(pos: LinePos, keyPath: Seg[], message: string, note = ''): void {
    const p = keyPath.join('.');
    // The same defaults or model key is checked once per build; say it once.
    if (this.issues.some((i) => i.line === pos.line && i.column === pos.col && i.path === p && i.base === message)) return;
    this.issues.push({ file: this.file, line: pos.line, column: pos.col, path: p, message: message + note, base: message });
  }

  throwIfAny(): void {
    if (!this.issues.length) return;
    const issues = this.issues
      .map(({ base: _, ...issue }) => issue)
      .sort((a, b) => a.line - b.line || a.column - b.column);
    throw new RecipeError(issues);
  }
}

export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

// ---------------------------------------------------------------------------------------------------------------
// Schema validation

let compiled: ValidateFunction | undefined;

/** Compiled once per process, on first use: compiling costs far more than validating. */
function validator(): ValidateFunction {
  if (compiled) return compiled;
  const schemaFile = fileURLToPath(new URL('../../schemas/compress.schema.json', import.meta.url));
  // Compiling is much of a cold load's cost. The schema ships with the package and the tests meta-validate it,
  // so skip that here; compile each step definition once rather than inlined at its three uses; skip ajv's code
  // optimizer. Together these cut compile time by about 2/3, and validating a recipe takes a few ms either way.
  const ajv = new Ajv({
    strict: true,
    allErrors: true,
    verbose: true,
    allowUnionTypes: true,
    validateSchema: false,
    inlineRefs: false,
    code: { optimize: false },
  });
  ajv.addKeyword({ keyword: 'patternErrorMessage', schemaType: 'string' }); // editors show it; so do we
  compiled = ajv.compile(JSON.parse(readFileSync(schemaFile, 'utf8')));
  return compiled;
}

type SchemaNode = Record<string, unknown> & {
  properties?: Record<string, unknown>;
  type?: string | string[];
  examples?: unknown[];
  patternErrorMessage?: string;
};

function schemaIssues(src: Source, all: ErrorObject[]): void {
  const seen = new Set<string>();
  for (const e of collapseAlternatives(all)) {
    if (e.propertyName !== undefined) continue; // the propertyNames error below reports it, at the key
    const at = pointerToPath(e.instancePath);
    const parent = (e.parentSchema ?? {}) as SchemaNode;
    if (e.keyword === 'additionalProperties') {
      const key = String(e.params.additionalProperty);
      const allowed = Object.keys(parent.properties ?? {});
      const hint = suggest(key, allowed);
      const message = hint ? `unknown key — did you mean "${hint}"?` : `unknown key; expected one of ${allowed.join(', ')}`;
      src.report([...at, key], message, 'key');
    } else if (e.keyword === 'required') {
      src.report(at, `missing required key "${e.params.missingProperty}"`, 'key');
    } else if (e.keyword === 'propertyNames') {
      const name = String(e.params.propertyName);
      const expected = (e.schema as SchemaNode).patternErrorMessage ?? 'expected a valid name';
      src.report([...at, name], `${expected}, found ${JSON.stringify(name)}`, 'key');
    } else if (!seen.has(e.instancePath)) {
      seen.add(e.instancePath); // one complaint per value: ajv lists every keyword it failed
      src.report(at, valueProblem(e, parent, at, src.isEmpty(at)), 'value');
    }
  }
}

function valueProblem(e: ErrorObject, parent: SchemaNode, at: Seg[], empty: boolean): string {
  const found = empty ? 'nothing' : describe(e.data);
  const hint = (candidates: unknown[] = []) => {
    const s = typeof e.data === 'string' ? suggest(e.data, candidates.map(String)) : undefined;
    return s ? ` — did you mean "${s}"?` : '';
  };
  switch (e.keyword) {
    case 'type': // a value with several accepted forms describes them best itself
      return `${parent.patternErrorMessage ?? `expected ${typeNames(e.params.type)}`}, found ${found}`;
    case 'enum':
      return `expected one of ${e.params.allowedValues.join(', ')}, found ${found}${hint(e.params.allowedValues)}`;
    case 'const':
      return `expected ${JSON.stringify(e.params.allowedValue)}, found ${found}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `expected ${range(parent)}, found ${found}`;
    case 'minLength':
      return `expected a non-empty string, found ${found}`;
    case 'pattern':
      return `${parent.patternErrorMessage ?? `expected a string matching /${e.params.pattern}/`}, found ${found}${hint(parent.examples)}`;
    case 'minProperties':
      return `expected at least one ${at.join('.') === 'models' ? 'model' : 'entry'}, found ${found}`;
    case 'anyOf':
    case 'oneOf':
      return e.params.passingSchemas
        ? `matches more than one alternative (${found})`
        : `expected ${(e.schema as SchemaNode[]).map(alternative).join(' or ')}, found ${found}`;
    default:
      return `${e.message ?? 'invalid'}, found ${found}`;
  }
}

/**
 * A failed anyOf/oneOf comes with the errors of every branch. If one branch got past the type check (its
 * errors are about deeper values), that is the branch the user meant: keep its errors. Otherwise keep just
 * the anyOf/oneOf error, which lists the alternatives.
 */
export function collapseAlternatives(errors: ErrorObject[]): ErrorObject[] {
  const dropped = new Set<ErrorObject>();
  for (const alt of errors) {
    if (alt.keyword !== 'anyOf' && alt.keyword !== 'oneOf') continue;
    const prefix = alt.schemaPath + '/';
    const inner = errors.filter((e) => e.schemaPath.startsWith(prefix));
    const depth = (e: ErrorObject) => e.instancePath.split('/').length;
    const deepest = inner.reduce<ErrorObject | undefined>((a, e) => (!a || depth(e) > depth(a) ? e : a), undefined);
    if (deepest && depth(deepest) > depth(alt)) {
      const branch = prefix + deepest.schemaPath.slice(prefix.length).split('/')[0] + '/';
      for (const e of inner) if (!e.schemaPath.startsWith(branch)) dropped.add(e);
      dropped.add(alt);
    } else for (const e of inner) dropped.add(e);
  }
  return errors.filter((e) => !dropped.has(e));
}

function alternative(s: SchemaNode): string {
  if (Array.isArray(s.enum)) return s.enum.map((v) => JSON.stringify(v)).join(' or ');
  if ('const' in s) return JSON.stringify(s.const);
  return s.type ? typeNames(s.type) : 'another form';
}

const TYPE_NAMES: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'true or false',
  null: 'null',
};

function typeNames(type: unknown): string {
  const types = (Array.isArray(type) ? type : String(type).split(',')).map(String);
  // Nullable sections accept null only to remove an inherited step; naming it in every message is noise.
  const shown = types.length > 1 ? types.filter((t) => t !== 'null') : types;
  return shown.map((t) => TYPE_NAMES[t] ?? t).join(' or ');
}

function range(s: SchemaNode): string {
  const kind = typeNames(s.type).includes('integer') ? 'an integer' : 'a number';
  const { minimum: min, maximum: max, exclusiveMinimum: xmin, exclusiveMaximum: xmax } = s;
  if (min !== undefined && max !== undefined) return `${kind} from ${min} to ${max}`;
  const lo = xmin !== undefined ? `> ${xmin}` : min !== undefined ? `≥ ${min}` : '';
  const hi = xmax !== undefined ? `< ${xmax}` : max !== undefined ? `≤ ${max}` : '';
  return `${kind} ${[lo, hi].filter(Boolean).join(' and ')}`;
}

/** A found value as the message shows it: strings quoted, collections by kind. */
function describe(v: unknown): string {
  if (Array.isArray(v)) return v.length ? 'a list' : 'an empty list';
  if (isObject(v)) return Object.keys(v).length ? 'a mapping' : 'an empty mapping';
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function pointerToPath(pointer: string): Seg[] {
  return pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

// ---------------------------------------------------------------------------------------------------------------
// Unsupported features

function checkUnsupported(src: Source, data: Record<string, unknown>, scopes: Seg[][]): void {
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

// ---------------------------------------------------------------------------------------------------------------
// Merging and normalizing builds

type Obj = Record<string, unknown>;
interface Layer {
  at: Seg[];
  config: Obj;
}

const STEPS = new Set<string>(STEP_ORDER);

function makeBuild(src: Source, data: Obj, name: string, variant: string | undefined, layers: Layer[]): Build {
  const scope = layers[layers.length - 1].at;
  const model = ['models', name];
  const origins = new Map<string, Seg[]>(); // merged key path → the recipe key it came from
  const merged = layers.reduce<Obj>((acc, l) => mergeLayer(acc, l.config, l.at, [], origins), {});
  const dir = path.dirname(src.file);
  const originOf = (keys: string[]): Seg[] => {
    for (let n = keys.length; n > 0; n--) {
      const o = origins.get(keys.slice(0, n).join('.'));
      if (o) return o;
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
  const output = normalizeOutput(src, outputAt, written, name, variant);

  const c = merged as Record<string, Obj | undefined>; // sections; the schema has checked their shape
  for (const [section, key] of [['prune', 'rate'], ['quantize', 'dtype'], ['calibration', 'data'], ['evaluate', 'data']] as const) {
    if (c[section] && c[section][key] === undefined) problem([section], `missing required key "${key}"`, 'key');
  }
  const calibration = c.calibration?.data !== undefined ? dataSpec(c.calibration, dataPath) : undefined;
  const steps: Build['steps'] = {};
  if (c.prune?.rate !== undefined) steps.prune = pruneStep(c.prune, problem, calibration !== undefined);
  if (c.lowrank) steps.lowrank = lowrankStep(c.lowrank, problem);
  if (c.distill) {
    const step = distillStep(c.distill, calibration, abs, dataPath, problem);
    if (step) steps.distill = step;
  }
  if (c.quantize?.dtype !== undefined) steps.quantize = quantizeStep(c.quantize, problem);

  const build: Build = {
    name,
    ...(variant !== undefined && { variant }),
    id: variant === undefined ? name : `${name}.${variant}`,
    source: abs(String(getIn(data, [...model, 'source']))),
    output,
    emit: (merged.emit as Build['emit']) ?? 'imported',
    steps,
    ...(calibration && { calibration }),
    ...(c.evaluate?.data !== undefined && { evaluate: evaluateSpec(c.evaluate, dataPath) }),
    device: (merged.device as Build['device']) ?? 'auto',
    ...(c.budget && { budget: budget(c.budget) }),
    positions: {},
  };

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

type Problem = (keys: string[], message: string, at?: 'key' | 'value') => void;
const list = (v: unknown) => (Array.isArray(v) ? v.map(String) : []);

/** `method` defaults to activation-aware when calibration data is given (it keeps far more accuracy:
 * bench/results.md), else to magnitude. */
function pruneStep(p: Obj, problem: Problem, calibrated: boolean): PruneStep {
  const structure = (p.structure as PruneStep['structure']) ?? 'unstructured';
  const nm = /^(\d+):(\d+)$/.exec(structure);
  if (nm) {
    const [n, m] = [Number(nm[1]), Number(nm[2])];
    if (!(n >= 1 && n < m && m <= 32)) problem(['prune', 'structure'], `expected N:M with 1 ≤ N < M ≤ 32, found "${structure}"`);
  }
  return {
    rate: p.rate as number,
    method: (p.method as PruneStep['method']) ?? (calibrated ? 'activation-aware' : 'magnitude'),
    structure,
    scope: (p.scope as PruneStep['scope']) ?? 'layer',
    include: list(p.include),
    exclude: list(p.exclude),
  };
}

function lowrankStep(l: Obj, problem: Problem): LowrankStep {
  const set = (['rank', 'ratio', 'energy'] as const).filter((k) => l[k] !== undefined);
  if (set.length === 0) problem(['lowrank'], 'set one of rank, ratio or energy', 'key');
  if (set.length > 1) problem(['lowrank', set[1]], `set only one of rank, ratio or energy (${set.join(' and ')} are set)`, 'key');
  return {
    ...Object.fromEntries(set.map((k) => [k, l[k] as number])),
    method: (l.method as LowrankStep['method']) ?? 'svd',
    include: list(l.include),
    exclude: list(l.exclude),
  };
}

type Resolve = (p: string) => string;

function distillStep(d: Obj, calibration: DataSpec | undefined, abs: Resolve, dataPath: Resolve, problem: Problem) {
  if (d.steps !== undefined && d.epochs !== undefined) problem(['distill', 'epochs'], 'set steps or epochs, not both', 'key');
  const data = d.data !== undefined ? dataPath(String(d.data)) : calibration?.data;
  if (data === undefined) {
    problem(['distill'], 'no training data: set distill.data or calibration.data', 'key');
    return undefined;
  }
  const teacher = (d.teacher as string | undefined) ?? 'original';
  const step: DistillStep = {
    teacher: teacher === 'original' ? teacher : abs(teacher),
    data,
    temperature: (d.temperature as number) ?? 2,
    ...(d.steps !== undefined ? { steps: d.steps as number } : { epochs: (d.epochs as number) ?? 1 }),
    learningRate: (d.learningRate as number) ?? 1e-3,
    batchSize: (d.batchSize as number) ?? 32,
    method: (d.method as DistillStep['method']) ?? 'logits',
    labels: (d.labels as boolean) ?? false,
    seed: (d.seed as number) ?? 0,
  };
  return step;
}

/** The normalized quantize block a recipe with only `dtype` gets (every default filled in). */
export function quantizeDefaults(dtype: QuantizeStep['dtype']): QuantizeStep {
  return quantizeStep({ dtype }, () => {});
}

function quantizeStep(q: Obj, problem: Problem): QuantizeStep {
  const dtype = q.dtype as QuantizeStep['dtype'];
  const fourBit = dtype === 'int4' || dtype === 'uint4';
  const method = (q.method as QuantizeStep['method']) ?? 'rtn';
  if (typeof q.granularity === 'number' && !fourBit) {
    problem(['quantize', 'granularity'], `block-wise granularity is for int4/uint4, not ${dtype}`);
  }
  if (q.actOrder === true && method !== 'gptq') problem(['quantize', 'actOrder'], 'actOrder only applies to method: gptq');
  if (q.float16 === false && dtype === 'float16') problem(['quantize', 'float16'], 'float16: false contradicts dtype: float16');
  return {
    dtype,
    granularity: (q.granularity as QuantizeStep['granularity']) ?? (fourBit ? 32 : 'per-channel'),
    symmetric: (q.symmetric as boolean) ?? !dtype.startsWith('u'),
    method,
    actOrder: (q.actOrder as boolean) ?? false,
    target: (q.target as QuantizeStep['target']) ?? 'wasm',
    ...(q.format !== undefined && { format: q.format as QuantizeStep['format'] }),
    float16: dtype === 'float16' || q.float16 === true,
    keepIoTypes: (q.keepIoTypes as boolean) ?? true,
    keepFloat32Ops: list(q.keepFloat32Ops),
    include: list(q.include),
    exclude: list(q.exclude),
  };
}

function dataSpec(d: Obj, dataPath: Resolve): DataSpec {
  return {
    data: dataPath(String(d.data)),
    samples: (d.samples as number) ?? 128,
    ...(d.shapes !== undefined && { shapes: { ...(d.shapes as Record<string, number>) } }),
  };
}

function evaluateSpec(e: Obj, dataPath: Resolve): EvaluateSpec {
  return {
    data: dataPath(String(e.data)),
    ...(e.samples !== undefined && { samples: e.samples as number }),
    ...(e.shapes !== undefined && { shapes: { ...(e.shapes as Record<string, number>) } }),
    ...(e.labels !== undefined && { labels: e.labels as boolean }),
    ...(e.output !== undefined && { output: e.output as string }),
    labelKey: (e.labelKey as string) ?? 'label',
    runs: (e.runs as number) ?? 20,
  };
}

function budget(b: Obj): Budget {
  const out: Budget = { onFail: (b.onFail as Budget['onFail']) ?? 'error' };
  for (const k of ['maxAccuracyDrop', 'minAgreement', 'minCosine'] as const) if (b[k] !== undefined) out[k] = b[k] as number;
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

function checkDuplicateOutputs(src: Source, builds: Build[]): void {
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

function checkFiles(src: Source, builds: Build[]): void {
  const stats = new Map<string, Stats | undefined>();
  const stat = (p: string) => {
    if (!stats.has(p)) stats.set(p, statSync(p, { throwIfNoEntry: false }));
    return stats.get(p);
  };
  const check = (b: Build, key: string, file: string, kind: 'model' | 'data') => {
    if (file === 'random' || file === 'original') return;
    const s = stat(file);
    const problem = !s
      ? `file not found: ${file}`
      : kind === 'model' && !s.isFile()
        ? `expected an .onnx file, found a folder: ${file}`
        : kind === 'data' && s.isFile() && !dataExtensions.includes(path.extname(file).toLowerCase())
          ? `unsupported data file type: ${file} (expected ${dataExtensions.join(', ')} or a folder)`
          : undefined;
    if (!problem) return;
    const keys = positionOf(b, key).path.split('.');
    src.report(keys, problem, 'value');
  };
  for (const b of builds) {
    check(b, 'source', b.source, 'model');
    if (b.steps.distill) {
      check(b, 'steps.distill.teacher', b.steps.distill.teacher, 'model');
      check(b, 'steps.distill.data', b.steps.distill.data, 'data');
    }
    if (b.calibration) check(b, 'calibration.data', b.calibration.data, 'data');
    if (b.evaluate) check(b, 'evaluate.data', b.evaluate.data, 'data');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Plain-object helpers

function isObject(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function getIn(v: unknown, keys: Seg[]): unknown {
  for (const k of keys) {
    if (!isObject(v) && !Array.isArray(v)) return undefined;
    v = (v as Obj)[k as string];
  }
  return v;
}

function omit(o: Obj, keys: string[]): Obj {
  return Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
}

/**
 * Deep merge of one layer (defaults, model, variant) onto the result so far: mappings merge key by key, anything
 * else replaces, null removes. `origins` records, for each merged key, the recipe key that set it.
 */
function mergeLayer(base: Obj, over: Obj, at: Seg[], keys: string[], origins: Map<string, Seg[]>): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const p = [...keys, k];
    const id = p.join('.');
    if (v === null || (isObject(out[k]) && !isObject(v))) {
      // A mapping removed or replaced whole: what earlier layers set below it is gone.
      for (const o of origins.keys()) if (o === id || o.startsWith(id + '.')) origins.delete(o);
    }
    if (v === null) {
      delete out[k];
      continue;
    }
    origins.set(id, [...at, ...p]);
    setKey(out, k, isObject(v) ? mergeLayer(isObject(out[k]) ? out[k] : {}, v, at, p, origins) : v);
  }
  return out;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObject(v)) return v;
  const out: Obj = {};
  for (const k of Object.keys(v).sort()) if (v[k] !== undefined) setKey(out, k, sortKeys(v[k]));
  return out;
}

/** Defined, not assigned: a `__proto__` key (say, in calibration.shapes) must stay a plain key. */
function setKey(o: Obj, k: string, value: unknown): void {
  Object.defineProperty(o, k, { value, enumerable: true, writable: true, configurable: true });
}
