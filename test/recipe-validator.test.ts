/**
 * The recipe validator compiled ahead of time by `npm run build` (scripts/recipe-validator.mjs) must
 * judge recipes exactly as the one compiled at run time from the sources: same verdicts, same errors.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { ValidateFunction } from 'ajv';
import { compileValidator } from '../src/recipe/schema.js';
// @ts-expect-error plain JavaScript build script
import { recipeValidatorSource } from '../scripts/recipe-validator.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const recipes: unknown[] = [
  { models: { m: { source: 'm.onnx', quantize: { dtype: 'int8' } } } },
  { models: { m: { sourc: 'm.onnx', quantize: { dtype: 'int9', granularity: -3 }, evaluate: { runs: 'x' } } } },
  { models: { 'bad name!': { source: 1, prune: { rate: 2, method: 'nope' } } }, defaults: { device: 'tpu' } },
  { models: { m: { source: 'm.onnx', budget: { minCosine: 'high' }, calibration: { samples: -1 } } }, extra: true },
  [],
];

const view = (v: ValidateFunction) => (v.errors ?? []).map((e) => ({ path: e.instancePath, keyword: e.keyword, params: e.params, message: e.message, schema: e.schema, data: e.data }));

describe('the ahead-of-time recipe validator', () => {
  it('gives the same verdicts and errors as the one compiled at run time', () => {
    // Inside the project, where the generated code's require('ajv/dist/runtime/…') resolves.
    mkdirSync(path.join(root, 'node_modules', '.cache'), { recursive: true });
    const dir = mkdtempSync(path.join(root, 'node_modules', '.cache', 'recipe-validator-'));
    const file = path.join(dir, 'recipe-validator.cjs');
    writeFileSync(file, recipeValidatorSource() as string);
    const generated = createRequire(import.meta.url)(file) as ValidateFunction;
    const runtime = compileValidator();
    for (const r of recipes) {
      expect(generated(r)).toBe(runtime(r));
      expect(view(generated)).toEqual(view(runtime));
    }
    expect(generated(recipes[1])).toBe(false);
    expect(view(generated).length).toBeGreaterThan(2);
    rmSync(dir, { recursive: true, force: true });
  });
});
