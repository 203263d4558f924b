/**
 * The step registry is the one list of steps: the JSON schema's step blocks, the recipe loader, the
 * cache key and the manifest all follow it. These tests keep the schema and the configs in agreement
 * (names, keys, defaults), and the configs free of run-time dependencies.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseRecipe, RecipeError } from '../src/recipe/index.js';
import { FILE_KEYS, mapFilePaths } from '../src/recipe/files.js';
import { STEP_ORDER, STEP_REGISTRY, loadStep, overrideStep } from '../src/transforms/registry.js';
import type { NormalizeContext } from '../src/transforms/step-config.js';

type Schema = { definitions: Record<string, { properties?: Record<string, { default?: unknown; description?: string }> }> };
const schema = JSON.parse(readFileSync(new URL('../schemas/compress.schema.json', import.meta.url), 'utf8')) as Schema;
const defs = schema.definitions;
/** Recipe sections that are not steps. */
const NOT_STEPS = ['source', 'externalDataDirs', 'output', 'emit', 'layout', 'pick', 'device', 'webCheck', 'calibration', 'evaluate', 'budget', 'variants'];

/** A valid value for a required key, to normalize a block that sets nothing else. */
const REQUIRED_VALUE: Record<string, unknown> = { rate: 0.5, dtype: 'int8' };

const quiet = (problems: string[]): NormalizeContext => ({
  problem: (keys, message) => problems.push(`${keys.join('.')}: ${message}`),
  calibration: '/data/calib.jsonl',
  modelPath: (p) => (p === 'original' ? p : `/abs/${p}`),
  dataPath: (p) => (p === 'random' ? p : `/abs/${p}`),
});

describe('step registry', () => {
  it('lists the steps the schema has, in run order, in every place a step block goes', () => {
    expect(STEP_ORDER).toEqual(['simplify', 'prune', 'lowrank', 'distill', 'quantize']);
    for (const where of ['model', 'variant', 'defaults']) {
      const keys = Object.keys(defs[where].properties!).filter((k) => !NOT_STEPS.includes(k));
      expect(keys.sort(), where).toEqual([...STEP_ORDER].sort());
      for (const name of STEP_ORDER) expect(defs[where].properties![name]).toEqual({ $ref: `#/definitions/${name}` });
    }
    const manifest = JSON.parse(readFileSync(new URL('../schemas/manifest.schema.json', import.meta.url), 'utf8'));
    expect(manifest.definitions.stepReport.properties.step.enum).toEqual([...STEP_ORDER]);
  });

  for (const { name, config } of STEP_REGISTRY) {
    describe(name, () => {
      const props = defs[name].properties!;

      it('has the keys the schema block has, with the same defaults', () => {
        expect(config.name).toBe(name);
        expect(Object.keys(config.keys).sort()).toEqual(Object.keys(props).sort());
        for (const [key, value] of Object.entries(config.keys)) expect(props[key].default, `${name}.${key}`).toEqual(value);
        for (const key of config.required) expect(props[key].description, `${name}.${key}`).toMatch(/\(required\)/);
        for (const key of Object.keys(config.files)) expect(props[key], `${name}.${key}`).toBeDefined();
      });

      it('normalizes a block with only its required keys to those defaults', () => {
        const problems: string[] = [];
        const block = Object.fromEntries(config.required.map((k) => [k, REQUIRED_VALUE[k]]));
        if (name === 'lowrank') block.rank = 4; // one of rank / ratio / energy is needed
        const params = config.normalize(block, quiet(problems)) as unknown as Record<string, unknown>;
        expect(problems).toEqual([]);
        for (const [key, value] of Object.entries(config.keys)) if (value !== undefined) expect(params[key], `${name}.${key}`).toEqual(value);
        for (const key of Object.keys(params)) expect(Object.keys(config.keys)).toContain(key);
      });

      it('loads its implementation through a literal import', async () => {
        const source = readFileSync(new URL('../src/transforms/registry.ts', import.meta.url), 'utf8');
        expect(source).toContain(`import('./${name}/index.js')`);
        expect(typeof (await loadStep(name))).toBe('function');
      });

      it('keeps its config free of run-time imports (reading a recipe loads no transform)', () => {
        const source = readFileSync(new URL(`../src/transforms/${name}/config.ts`, import.meta.url), 'utf8');
        const imports = [...source.matchAll(/^import\s+(type\s+)?.*from '([^']+)'/gm)].map((m) => m[2]);
        expect(imports.every((i) => i === '../step-config.js')).toBe(true);
      });
    });
  }

  it('maps only the keys that name files: a node-name glob starting with "/" stays a glob', () => {
    expect([...FILE_KEYS.keys()]).toEqual(['steps.distill.teacher', 'steps.distill.data', 'calibration.data', 'evaluate.data']);
    const build = parseRecipe(
      'models:\n  m:\n    source: m.onnx\n    calibration: { data: ./calib.jsonl }\n    prune: { rate: 0.5, exclude: ["/encoder/*"] }\n    distill: { teacher: t.onnx }\n    quantize: { dtype: int8, include: ["/decoder/*"] }\n',
      '/proj/compress.yaml',
    ).builds[0];
    const mapped = mapFilePaths({ steps: build.steps, calibration: build.calibration }, (f) => `hashed:${f}`);
    expect(mapped.calibration!.data).toBe('hashed:/proj/calib.jsonl');
    expect(mapped.steps.distill!.teacher).toBe('hashed:/proj/t.onnx');
    expect(mapped.steps.distill!.data).toBe('hashed:/proj/calib.jsonl');
    expect(mapped.steps.prune!.exclude).toEqual(['/encoder/*']);
    expect(mapped.steps.quantize!.include).toEqual(['/decoder/*']);
  });

  it('reports a check that needs other sections (gptq without calibration) at the recipe line', () => {
    const text = 'models:\n  m:\n    source: m.onnx\n    quantize:\n      dtype: int4\n      method: gptq\n';
    const err = (() => {
      try {
        parseRecipe(text, '/proj/compress.yaml');
      } catch (e) {
        return e as RecipeError;
      }
    })();
    expect(err).toBeInstanceOf(RecipeError);
    expect(err!.issues).toEqual([
      expect.objectContaining({ line: 6, column: 15, path: 'models.m.quantize.method', message: 'method gptq needs calibration data: set calibration.data' }),
    ]);
    expect(() => parseRecipe(text + '    calibration: { data: random }\n', '/proj/compress.yaml')).not.toThrow();
  });

  it('lets tests replace a step implementation', async () => {
    const fake = () => async () => {
      throw new Error('fake');
    };
    overrideStep('prune', fake as never);
    expect(await loadStep('prune')).toBe(fake);
    overrideStep('prune', undefined);
    expect(await loadStep('prune')).not.toBe(fake);
  });
});
