/** JSON-schema validation of a recipe, with ajv's errors turned into messages at the recipe's keys. */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Ajv as AjvClass, ErrorObject, ValidateFunction } from 'ajv';
import { isObject } from './objects.js';
import type { Seg, Source } from './source.js';
import { suggest } from './suggest.js';

let compiled: ValidateFunction | undefined;
const require = createRequire(import.meta.url);

/**
 * The recipe schema's validator, once per process. `npm run build` compiles it ahead of time into
 * recipe-validator.cjs beside this file (scripts/recipe-validator.mjs, the same options as below):
 * loading that takes ~12 ms, where importing ajv and compiling took ~100 ms of every run. From the
 * sources (no such file) it is compiled here.
 */
export function validator(): ValidateFunction {
  if (compiled) return compiled;
  try {
    const generated = require('./recipe-validator.cjs') as { default?: ValidateFunction } & ValidateFunction;
    compiled = generated.default ?? generated;
    return compiled;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw e;
  }
  compiled = compileValidator();
  return compiled;
}

/** Compiles the schema with ajv (what scripts/recipe-validator.mjs does ahead of time). */
export function compileValidator(): ValidateFunction {
  const schemaFile = fileURLToPath(new URL('../../schemas/compress.schema.json', import.meta.url));
  // Compiling is much of a cold load's cost. The schema ships with the package and the tests meta-validate it,
  // so skip that here; compile each step definition once rather than inlined at its three uses; skip ajv's code
  // optimizer. Together these cut compile time by about 2/3, and validating a recipe takes a few ms either way.
  const { Ajv } = require('ajv') as { Ajv: typeof AjvClass };
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
  ajv.addKeyword({ keyword: 'enumHints', schemaType: 'object' }); // value → why it is refused and what to write instead
  return ajv.compile(JSON.parse(readFileSync(schemaFile, 'utf8')));
}

type SchemaNode = Record<string, unknown> & {
  properties?: Record<string, unknown>;
  type?: string | string[];
  examples?: unknown[];
  patternErrorMessage?: string;
  enumHints?: Record<string, string>;
};

export function schemaIssues(src: Source, all: ErrorObject[]): void {
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
      if (typeof e.data === 'string' && parent.enumHints?.[e.data]) return parent.enumHints[e.data];
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
export function describe(v: unknown): string {
  if (Array.isArray(v)) return v.length ? 'a list' : 'an empty list';
  if (isObject(v)) return Object.keys(v).length ? 'a mapping' : 'an empty mapping';
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

function pointerToPath(pointer: string): Seg[] {
  return pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

