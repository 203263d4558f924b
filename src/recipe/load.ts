/**
 * Recipe loading: YAML text → validated, normalized builds. The pieces: source.ts (positions and
 * issues), schema.ts (JSON-schema validation and its messages), build.ts (merging layers, normalizing
 * sections; steps through their configs in the step registry), files.ts (the values that name files).
 */
import { closeSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, isMap, parseDocument } from 'yaml';
import { CompressError } from '../errors.js';
import { openRegularFile } from '../onnx/paths.js';
import { limit } from '../limits.js';
import { checkDuplicateOutputs, checkUnsupported, makeBuild, positionOf, type Layer } from './build.js';
import { buildCountProblem, buildLimitIssues, recipeTextProblem } from './limits.js';
import { outputNameIssues } from './outputs.js';
import { checkFiles } from './files.js';
import { isObject, omit, sortKeys } from './objects.js';
import { describe, schemaIssues, validator } from './schema.js';
import { displayPath, RecipeError, Source } from './source.js';
import type { Build, Recipe } from './types.js';

export { positionOf, parseBytes } from './build.js';
export { mapFilePaths, mapFilePathsAsync, filesOf, FILE_KEYS } from './files.js';
export { collapseAlternatives } from './schema.js';
export { RecipeError, formatIssue, displayPath, type RecipeIssue } from './source.js';
export { quantizeDefaults } from '../transforms/quantize/config.js';

export interface LoadOptions {
  /** Check that every referenced file exists (default: true for loadRecipe, false for parseRecipe). */
  checkFiles?: boolean;
}

/** Reads, validates and normalizes a recipe; checks referenced files unless `checkFiles: false`. */
export async function loadRecipe(file: string, opts: LoadOptions = {}): Promise<Recipe> {
  const abs = path.resolve(file);
  // Opened without blocking and checked before reading: a FIFO, a device or a folder is an error naming
  // the recipe (not a hang), and an oversized file is refused without reading it.
  let opened: ReturnType<typeof openRegularFile>;
  try {
    opened = openRegularFile(abs, 'io', 'the recipe');
  } catch (cause) {
    const reason = cause instanceof CompressError ? cause.message.slice(`${cause.location.file}: `.length).replace(/^cannot open: /, '') : String(cause);
    throw new CompressError('io', `cannot read recipe: ${reason}`, { file: displayPath(abs) }, { cause });
  }
  const { fd, stat } = opened;
  let text: string;
  try {
    const maxBytes = limit('RECIPE_BYTES');
    if (stat.size > maxBytes) {
      throw new RecipeError([{ file: abs, line: 1, column: 1, path: '', message: `the recipe is ${stat.size} bytes, over the limit of ${maxBytes} (set ONNX_COMPRESS_LIMIT_RECIPE_BYTES to change the limit)` }]);
    }
    text = readFileSync(fd, 'utf8');
  } catch (cause) {
    if (cause instanceof CompressError) throw cause;
    throw new CompressError('io', `cannot read recipe: ${(cause as Error).message}`, { file: displayPath(abs) }, { cause });
  } finally {
    closeSync(fd);
  }
  return parseRecipe(text, abs, { checkFiles: opts.checkFiles ?? true });
}

/** Validates and normalizes recipe text; `file` locates it (relative paths resolve from its folder). */
export function parseRecipe(text: string, file: string, opts: LoadOptions = {}): Recipe {
  const abs = path.resolve(file);
  const tooMuch = recipeTextProblem(text); // before parsing: deep nesting overflows the YAML parser's stack
  if (tooMuch) throw new RecipeError([{ file: abs, line: tooMuch.line, column: tooMuch.col, path: '', message: tooMuch.message }]);
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
    data = doc.toJS({ maxAliasCount: limit('RECIPE_ALIASES') });
  } catch (e) {
    const aliases = /alias/i.test((e as Error).message) ? ` (more than ${limit('RECIPE_ALIASES')} alias expansions; set ONNX_COMPRESS_LIMIT_RECIPE_ALIASES to change the limit)` : '';
    src.report([], `invalid YAML: ${(e as Error).message}${aliases}`, 'value');
    return src.throwIfAny() as never;
  }

  const modelsIn = isObject(data.models) ? Object.values(data.models) : [];
  const tooMany = buildCountProblem(modelsIn.reduce<number>((n, m) => n + 1 + (isObject(m) && isObject(m.variants) ? Object.keys(m.variants).length : 0), 0));
  if (tooMany) src.report(['models'], tooMany, 'key');
  src.throwIfAny();

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
      { at: ['models', name], config: omit(model, ['source', 'output', 'variants', 'externalDataDirs']) },
    ];
    builds.push(makeBuild(src, data, name, undefined, base));
    for (const [variant, over] of Object.entries(variants)) {
      if (!isObject(over)) continue;
      const layer = { at: ['models', name, 'variants', variant], config: omit(over, ['output']) };
      builds.push(makeBuild(src, data, name, variant, [...base, layer]));
    }
  }
  checkDuplicateOutputs(src, builds);
  for (const b of builds) for (const i of buildLimitIssues(b)) src.report(positionOf(b, i.key).path.split('.'), i.message, 'value');
  for (const i of outputNameIssues(builds)) src.report((i.atOutput ? i.build.positions.output! : i.build.positions['']).path.split('.'), i.message, i.atOutput ? 'value' : 'key');
  if (opts.checkFiles) checkFiles(src, builds);
  src.throwIfAny();
  return { file: abs, dir: path.dirname(abs), builds };
}

/** Everything that affects the output bytes (steps and calibration), keys sorted, for cache keys. */
export function normalizedStepConfig(build: Build): unknown {
  return sortKeys({ steps: build.steps, calibration: build.calibration });
}

