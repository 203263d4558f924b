import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CompressError } from '../src/errors.js';
import {
  RecipeError,
  loadRecipe,
  normalizedStepConfig,
  parseBytes,
  parseRecipe,
  positionOf,
  suggest,
  unsupportedFeatures,
  type Build,
  type Recipe,
} from '../src/recipe/index.js';
import { collapseAlternatives } from '../src/recipe/load.js';
import { WEBGPU_STATIC_REASON } from '../src/transforms/quantize/config.js';

let dir: string;
let n = 0;

/** Writes a recipe into the temp project (models/ and data/ exist there) and returns its path. */
function write(text: string): string {
  const file = path.join(dir, `recipe-${++n}.yaml`);
  writeFileSync(file, text);
  return file;
}

const yaml = (lines: string[]) => lines.join('\n') + '\n';

async function load(text: string): Promise<Recipe> {
  return loadRecipe(write(text));
}

/** The RecipeError that loading `text` throws (checking files), with the recipe's path. */
async function failure(text: string): Promise<{ error: RecipeError; file: string }> {
  const file = write(text);
  const error = await loadRecipe(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RecipeError);
  return { error: error as RecipeError, file };
}

/** The error message lines, with the recipe path shortened to `R` for readability. */
async function problems(text: string): Promise<string[]> {
  const { error, file } = await failure(text);
  return error.message.split('\n').map((l) => l.replaceAll(file, 'R'));
}

/** Runs with nothing marked unsupported, to test the format itself; the list is restored afterwards. */
async function allSupported<T>(fn: () => Promise<T>): Promise<T> {
  const saved = unsupportedFeatures.splice(0);
  try {
    return await fn();
  } finally {
    unsupportedFeatures.push(...saved);
  }
}

const withoutPositions = (b: Build) => {
  const { positions: _, ...rest } = b;
  return rest;
};

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'recipe-test-'));
  mkdirSync(path.join(dir, 'models'));
  mkdirSync(path.join(dir, 'data', 'folder'), { recursive: true });
  for (const f of ['models/spam.onnx', 'models/cnn.onnx', 'models/teacher.onnx', 'data/digits-calib.jsonl', 'data/eval.npz', 'data/notes.csv']) {
    writeFileSync(path.join(dir, f), '');
  }
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const EXAMPLE = yaml([
  '$schema: ./node_modules/unplugin-onnx-compress/schemas/compress.schema.json   # optional',
  'defaults:',
  '  device: auto',
  '  budget: { maxAccuracyDrop: 0.01 }',
  'models:',
  '  spam:',
  '    source: ./models/spam.onnx',
  '    output: spam.int8.onnx',
  '    emit: always',
  '    quantize: { dtype: int8 }',
  '    variants:',
  '      q4: { quantize: { dtype: int4 } }',
  '  digits:',
  '    source: ./models/cnn.onnx',
  '    prune: { rate: 0.3, structure: channels }',
  '    quantize: { dtype: int4, method: gptq }',
  '    calibration: { data: ./data/digits-calib.jsonl }',
]);

/** The simplify step every build runs unless its recipe turns it off. */
const simplify = { skip: [], tolerance: 1e-5, onMismatch: 'drop' };
const int8 = {
  dtype: 'int8',
  granularity: 'per-channel',
  symmetric: true,
  method: 'rtn',
  actOrder: false,
  target: 'wasm',
  float16: false,
  keepIoTypes: true,
  keepFloat32Ops: [],
  include: [],
  exclude: [],
};

describe('normalized builds', () => {
  it('fills defaults, merges variants and resolves paths for the README example', async () => {
    const recipe = await allSupported(() => load(EXAMPLE));
    expect(recipe.dir).toBe(dir);
    expect(path.isAbsolute(recipe.file)).toBe(true);
    expect(recipe.builds.map(withoutPositions)).toEqual([
      {
        name: 'spam',
        id: 'spam',
        source: path.join(dir, 'models/spam.onnx'),
        output: 'spam.int8.onnx',
        emit: 'always',
        steps: { simplify, quantize: int8 },
        device: 'auto',
        budget: { maxAccuracyDrop: 0.01, onFail: 'error' },
      },
      {
        name: 'spam',
        variant: 'q4',
        id: 'spam.q4',
        source: path.join(dir, 'models/spam.onnx'),
        output: 'spam.q4.onnx', // from the model's name, not its output
        emit: 'always',
        steps: { simplify, quantize: { ...int8, dtype: 'int4', granularity: 32 } },
        device: 'auto',
        budget: { maxAccuracyDrop: 0.01, onFail: 'error' },
      },
      {
        name: 'digits',
        id: 'digits',
        source: path.join(dir, 'models/cnn.onnx'),
        output: 'digits.onnx',
        emit: 'imported',
        steps: {
          simplify,
          prune: { rate: 0.3, method: 'activation-aware', structure: 'channels', scope: 'layer', include: [], exclude: [] },
          quantize: { ...int8, dtype: 'int4', granularity: 32, method: 'gptq' },
        },
        calibration: { data: path.join(dir, 'data/digits-calib.jsonl'), samples: 128 },
        device: 'auto',
        budget: { maxAccuracyDrop: 0.01, onFail: 'error' },
      },
    ]);
  });

  it('records where every key of a build was written', async () => {
    const [spam, q4] = (await allSupported(() => load(EXAMPLE))).builds;
    expect(spam.positions['']).toEqual({ line: 6, column: 3, path: 'models.spam' });
    expect(spam.positions['steps.quantize.dtype']).toEqual({ line: 10, column: 17, path: 'models.spam.quantize.dtype' });
    expect(spam.positions['budget.maxAccuracyDrop']).toEqual({ line: 4, column: 13, path: 'defaults.budget.maxAccuracyDrop' });
    expect(q4.positions['steps.quantize.dtype']).toEqual({ line: 12, column: 25, path: 'models.spam.variants.q4.quantize.dtype' });
    expect(q4.positions.emit).toEqual({ line: 9, column: 5, path: 'models.spam.emit' });
    // Defaulted keys fall back to the nearest written ancestor.
    expect(positionOf(q4, 'steps.quantize.granularity').path).toBe('models.spam.variants.q4.quantize');
    expect(positionOf(spam, 'evaluate.runs').path).toBe('models.spam');
  });

  it('deep-merges defaults under each model: mappings merge, lists and scalars replace', async () => {
    const recipe = await load(
      yaml([
        'defaults:',
        '  emit: always',
        '  quantize: { dtype: int8, target: webgpu, exclude: [op:Gather] }',
        '  evaluate: { data: ./data/eval.npz, runs: 5 }',
        '  budget: { maxBytes: 1.5 MiB, onFail: warn }',
        'models:',
        '  a:',
        '    source: ./models/spam.onnx',
        '    quantize: { granularity: per-tensor }',
        '  b:',
        '    source: ./models/cnn.onnx',
        '    emit: imported',
        '    quantize: { dtype: uint4, exclude: [/head/*] }',
        '    budget: { maxBytes: 500kB }',
      ]),
    );
    const [a, b] = recipe.builds;
    expect(a.steps.quantize).toEqual({ ...int8, target: 'webgpu', granularity: 'per-tensor', exclude: ['op:Gather'] });
    expect(b.steps.quantize).toEqual({ ...int8, dtype: 'uint4', granularity: 32, symmetric: false, target: 'webgpu', exclude: ['/head/*'] });
    expect([a.emit, b.emit]).toEqual(['always', 'imported']);
    expect(a.evaluate).toEqual({ data: path.join(dir, 'data/eval.npz'), labelKey: 'label', runs: 5, threads: 1, web: false });
    expect(a.budget).toEqual({ maxBytes: 1_572_864, onFail: 'warn' });
    expect(b.budget).toEqual({ maxBytes: 500_000, onFail: 'warn' });
    expect(a.positions['steps.quantize.target'].path).toBe('defaults.quantize.target');
    expect(b.positions['steps.quantize.exclude'].path).toBe('models.b.quantize.exclude');
  });

  it('removes a step set to null in a variant or a model', async () => {
    const recipe = await load(
      yaml([
        'defaults:',
        '  budget: { minAgreement: 0.99 }',
        'models:',
        '  spam:',
        '    source: ./models/spam.onnx',
        '    budget: null',
        '    quantize: { dtype: int8 }',
        '    calibration: { data: random, samples: 16, shapes: { batch: 1, seq: 128 } }',
        '    variants:',
        '      fp32: { quantize: null }',
        '      f16: { quantize: { dtype: float16, keepFloat32Ops: [Softmax] }, output: web/spam-f16.onnx }',
      ]),
    );
    const [main, fp32, f16] = recipe.builds;
    expect(main.budget).toBeUndefined();
    expect(main.steps.quantize?.dtype).toBe('int8');
    expect(fp32.steps).toEqual({ simplify });
    expect(fp32.output).toBe('spam.fp32.onnx');
    expect(fp32.calibration).toEqual({ data: 'random', samples: 16, shapes: { batch: 1, seq: 128 } });
    expect(f16.output).toBe('web/spam-f16.onnx');
    expect(f16.steps.quantize).toMatchObject({ dtype: 'float16', float16: true, keepFloat32Ops: ['Softmax'] });
  });

  it('normalizes q4f16 and defaults symmetric by signedness', async () => {
    const recipe = await load(
      yaml([
        'models:',
        '  m:',
        '    source: ./models/spam.onnx',
        '    quantize: { dtype: int4, float16: true, granularity: 128 }',
        '    variants:',
        '      u8: { quantize: { dtype: uint8, granularity: per-channel } }',
        '  n:',
        '    source: ./models/cnn.onnx',
        '    quantize: { dtype: float16, float16: true }', // redundant, and fine
      ]),
    );
    expect(recipe.builds[2].steps.quantize).toMatchObject({ dtype: 'float16', float16: true });
    expect(recipe.builds[0].steps.quantize).toMatchObject({ dtype: 'int4', float16: true, granularity: 128, symmetric: true });
    expect(recipe.builds[1].steps.quantize).toMatchObject({ dtype: 'uint8', float16: true, granularity: 'per-channel', symmetric: false });
  });

  it('normalizes the other steps when they are supported', async () => {
    const recipe = await allSupported(() =>
      load(
        yaml([
          'models:',
          '  m:',
          '    source: ./models/cnn.onnx',
          '    prune: { rate: 0.5, structure: 2:4, scope: global, include: [op:MatMul] }',
          '    lowrank: { energy: 0.9 }',
          '    distill: { teacher: ./models/teacher.onnx, steps: 100 }',
          '    calibration: { data: ./data/folder }',
        ]),
      ),
    );
    const { steps } = recipe.builds[0];
    expect(steps.prune).toEqual({ rate: 0.5, method: 'activation-aware', structure: '2:4', scope: 'global', include: ['op:MatMul'], exclude: [] });
    expect(steps.lowrank).toEqual({ energy: 0.9, method: 'svd', include: [], exclude: [] });
    expect(steps.distill).toEqual({
      teacher: path.join(dir, 'models/teacher.onnx'),
      data: path.join(dir, 'data/folder'), // calibration data by default
      temperature: 2,
      steps: 100,
      learningRate: 1e-3,
      batchSize: 32,
      method: 'logits',
      labels: false,
      seed: 0,
    });
    expect(Object.keys(steps)).toEqual(['simplify', 'prune', 'lowrank', 'distill']);
  });

  it('gives a cache key of only what changes the output bytes, keys sorted', async () => {
    const recipe = await load(
      yaml([
        'models:',
        '  a:',
        '    source: ./models/spam.onnx',
        '    device: cpu',
        '    quantize: { target: node, dtype: int8 }',
        '    budget: { maxBytes: 10 }',
        '    variants:',
        '      gpu: { device: gpu, output: other.onnx, budget: null }',
        '      u8: { quantize: { dtype: uint8 } }',
      ]),
    );
    const [a, gpu, u8] = recipe.builds.map(normalizedStepConfig);
    expect(JSON.stringify(a)).toBe(JSON.stringify(gpu));
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(u8));
    const q = (a as { steps: { quantize: object } }).steps.quantize;
    expect(Object.keys(q)).toEqual([...Object.keys(q)].sort());
    expect(a).toEqual({ steps: { simplify, quantize: { ...int8, target: 'node' } } });
  });

  it('runs simplify by default; false turns it off, true or a block turns it on', () => {
    const text = (model: string, defaults = '') => `${defaults}models: { m: { source: ./m.onnx${model} } }`;
    const steps = (model: string, defaults = '') => parseRecipe(text(model, defaults), '/proj/compress.yaml').builds[0].steps;
    expect(steps('')).toEqual({ simplify });
    expect(steps(', simplify: false')).toEqual({});
    expect(steps(', simplify: true')).toEqual({ simplify });
    expect(steps(', simplify: null')).toEqual({ simplify });
    expect(steps(', simplify: { skip: [gemm, gelu], onMismatch: error }')).toEqual({ simplify: { ...simplify, skip: ['gemm', 'gelu'], onMismatch: 'error' } });
    expect(steps('', 'defaults: { simplify: false }\n')).toEqual({});
    expect(steps(', simplify: { tolerance: 0.001 }', 'defaults: { simplify: false }\n')).toEqual({ simplify: { ...simplify, tolerance: 0.001 } });
    expect(() => parseRecipe(text(', simplify: { skip: [fold, gemmm] }'), '/proj/compress.yaml')).toThrow(/models\.m\.simplify\.skip\.1: expected one of .*found "gemmm" — did you mean "gemm"\?/);
  });

  it('parses with parseRecipe without touching the disk', () => {
    const recipe = parseRecipe('models: { x: { source: ./nowhere.onnx, quantize: { dtype: int8 } } }', '/proj/compress.yaml');
    expect(recipe.builds[0].source).toBe(path.resolve('/proj/nowhere.onnx'));
  });

  it('prunes by magnitude without calibration data, activation-aware with it', () => {
    const text = (extra: string) => `models: { x: { source: ./m.onnx, prune: { rate: 0.3 }${extra} } }`;
    expect(parseRecipe(text(''), '/proj/compress.yaml').builds[0].steps.prune!.method).toBe('magnitude');
    expect(parseRecipe(text(', calibration: { data: random }'), '/proj/compress.yaml').builds[0].steps.prune!.method).toBe('activation-aware');
    expect(parseRecipe(text(', calibration: { data: random }').replace('rate: 0.3', 'rate: 0.3, method: magnitude'), '/proj/compress.yaml').builds[0].steps.prune!.method).toBe('magnitude');
  });
});

describe('recipe errors', () => {
  it('suggests the key meant by a typo', async () => {
    expect(
      await allSupported(() => problems(yaml(['models:', '  spam:', '    source: ./models/spam.onnx', '    lowrank:', '      rnak: 8']))),
    ).toEqual(['R:5:7: models.spam.lowrank.rnak: unknown key — did you mean "rank"?']);
    expect(await problems(yaml(['models:', '  spam:', '    source: ./models/spam.onnx', '    quantise: { dtype: int8 }']))).toEqual([
      'R:4:5: models.spam.quantise: unknown key — did you mean "quantize"?',
    ]);
  });

  it('lists what an enum allows, suggesting only an unambiguous match', async () => {
    const text = yaml(['models:', '  spam:', '    source: ./models/spam.onnx', '    quantize:', '      dtype: int3', '      target: webgpus']);
    expect(await problems(text)).toEqual([
      'R:5:14: models.spam.quantize.dtype: expected one of int8, uint8, int4, uint4, float16, q8, q4, q4f16, fp16, auto, found "int3"',
      'R:6:15: models.spam.quantize.target: expected one of wasm, webgpu, node, found "webgpus" — did you mean "webgpu"?',
    ]);
  });

  it('names the expected and found types', async () => {
    const text = yaml([
      'models:',
      '  spam:',
      '    source: ./models/spam.onnx',
      '    quantize: { dtype: int8, symmetric: "yes" }',
      '    calibration: { data: random, samples: lots }',
      '    budget: { maxBytes: 2.5, minCosine: 2 }',
    ]);
    expect(await problems(text)).toEqual([
      'R:4:41: models.spam.quantize.symmetric: expected true or false, found "yes"',
      'R:5:43: models.spam.calibration.samples: expected an integer, found "lots"',
      'R:6:25: models.spam.budget.maxBytes: expected a byte count or a size like "2MB", "500kB" or "1.5 MiB", found 2.5',
      'R:6:41: models.spam.budget.minCosine: expected a number from -1 to 1, found 2',
    ]);
  });

  it('reports a model without source at the model', async () => {
    expect(await problems(yaml(['models:', '  spam:', '    quantize: { dtype: int8 }']))).toEqual([
      'R:2:3: models.spam: missing required key "source"',
    ]);
  });

  it('reports missing files with their resolved path', async () => {
    const text = yaml([
      'models:',
      '  spam:',
      '    source: ./models/missing.onnx',
      '    quantize: { dtype: int8 }',
      '    calibration: { data: ../elsewhere/calib.jsonl }',
      '    evaluate: { data: ./data/notes.csv }',
    ]);
    expect(await problems(text)).toEqual([
      `R:3:13: models.spam.source: file not found: ${path.join(dir, 'models/missing.onnx')}`,
      `R:5:26: models.spam.calibration.data: file not found: ${path.resolve(dir, '../elsewhere/calib.jsonl')}`,
      `R:6:23: models.spam.evaluate.data: unsupported data file type: ${path.join(dir, 'data/notes.csv')} (expected .jsonl, .ndjson, .npy, .npz, .js, .mjs, .cjs, .ts, .mts, .cts or a folder)`,
    ]);
    // Without file checks the same recipe loads.
    expect((await loadRecipe(write(text), { checkFiles: false })).builds).toHaveLength(1);
  });

  it('keeps outputs inside the output directory', async () => {
    const text = yaml([
      'models:',
      '  spam:',
      '    source: ./models/spam.onnx',
      '    output: ../spam.onnx',
      '    variants:',
      '      abs: { output: /tmp/spam.onnx }',
      '      win: { output: "..\\\\up\\\\spam.onnx" }',
    ]);
    expect(await problems(text)).toEqual([
      'R:4:13: models.spam.output: output must stay inside the output directory, found "../spam.onnx"',
      'R:6:22: models.spam.variants.abs.output: output must stay inside the output directory, found "/tmp/spam.onnx"',
      'R:7:22: models.spam.variants.win.output: output must stay inside the output directory, found "..\\\\up\\\\spam.onnx"',
    ]);
  });

  it('rejects two builds writing the same file', async () => {
    const text = yaml([
      'models:',
      '  spam:',
      '    source: ./models/spam.onnx',
      '    variants:',
      '      q4: {}',
      '  other:',
      '    source: ./models/cnn.onnx',
      '    output: ./Spam.Q4.onnx',
    ]);
    expect(await problems(text)).toEqual(['R:8:13: models.other.output: output "Spam.Q4.onnx" is also written by models.spam.variants.q4 (line 5)']);
  });

  it('rejects features that are not supported yet, at their position', async () => {
    // The mechanism, with a list of its own (the real list shrinks as features land).
    const saved = unsupportedFeatures.splice(0, unsupportedFeatures.length, { path: 'distill' }, { path: 'prune' }, { path: 'quantize.method=gptq', reason: 'use method: rtn' });
    try {
      const text = yaml([
        'defaults:',
        '  distill: { epochs: 1 }',
        'models:',
        '  digits:',
        '    source: ./models/cnn.onnx',
        '    prune: { rate: 0.3 }',
        '    quantize: { dtype: int4, method: gptq }',
        '    calibration: { data: random }',
        '    variants:',
        '      plain: { prune: null, distill: null }',
      ]);
      expect(await problems(text)).toEqual([
        'R:2:3: defaults.distill: not supported yet',
        'R:6:5: models.digits.prune: not supported yet',
        'R:7:38: models.digits.quantize.method: "gptq" is not supported yet — use method: rtn',
      ]);
    } finally {
      unsupportedFeatures.splice(0, unsupportedFeatures.length, ...saved);
    }
  });

  it('reports YAML syntax errors with their position', async () => {
    expect(await problems(yaml(['models:', '  spam:', '    source: ./models/spam.onnx', '   quantize: {}']))).toEqual([
      'R:4:1: invalid YAML: All mapping items must start at the same column',
    ]);
    expect(await problems(yaml(['models:', '  spam: { source: a }', '  spam: { source: b }']))).toEqual([
      'R:3:3: invalid YAML: Map keys must be unique',
    ]);
  });

  it('reports several problems at once, in file order, as one CompressError', async () => {
    const { error, file } = await failure(
      yaml([
        'models:',
        '  spam:',
        '    source: ./models/spam.onnx',
        '    quantize: { dtype: int3, granularty: 32 }',
        '  digits:',
        '    emit: sometimes',
      ]),
    );
    expect(error).toBeInstanceOf(CompressError);
    expect(error.kind).toBe('recipe');
    expect(error.exitCode).toBe(2);
    expect(error.location).toEqual({ file, line: 4, column: 24 });
    expect(error.message).toBe(
      [
        `${file}:4:24: models.spam.quantize.dtype: expected one of int8, uint8, int4, uint4, float16, q8, q4, q4f16, fp16, auto, found "int3"`,
        `${file}:4:30: models.spam.quantize.granularty: unknown key — did you mean "granularity"?`,
        `${file}:5:3: models.digits: missing required key "source"`,
        `${file}:6:11: models.digits.emit: expected one of always, imported, found "sometimes"`,
      ].join('\n'),
    );
    expect(error.issues).toHaveLength(4);
    expect(error.issues[2]).toEqual({ file, line: 5, column: 3, path: 'models.digits', message: 'missing required key "source"' });
  });

  it('explains empty and malformed recipes', async () => {
    expect(await problems('')).toEqual(['R:1:1: the recipe is empty: expected a mapping with a "models" key']);
    expect(await problems('# nothing yet\n')).toEqual(['R:1:1: the recipe is empty: expected a mapping with a "models" key']);
    expect(await problems('- spam\n- digits\n')).toEqual(['R:1:1: expected a mapping with a "models" key at the top level, found a list']);
    expect(await problems('models: {}\n')).toEqual(['R:1:9: models: expected at least one model, found an empty mapping']);
    expect(await problems('models:\n')).toEqual(['R:1:1: models: expected a mapping, found nothing']);
    expect(await problems('defaults: { device: cpu }\n')).toEqual(['R:1:1: missing required key "models"']);
    expect(await problems('model:\n  spam: { source: ./models/spam.onnx }\n')).toEqual([
      'R:1:1: missing required key "models"',
      'R:1:1: model: unknown key — did you mean "models"?',
    ]);
  });

  it('checks what the schema cannot: N:M, one lowrank size, gptq options, block sizes, distill length', async () => {
    const text = yaml([
      'defaults:',
      '  quantize: { granularity: 64 }',
      'models:',
      '  a:',
      '    source: ./models/spam.onnx',
      '    prune: { rate: 0.5, structure: 4:2 }',
      '    lowrank: { rank: 8, ratio: 0.5 }',
      '    quantize: { dtype: int4, actOrder: true }',
      '    variants:',
      '      q8: { quantize: { dtype: int8 } }',
      '  b:',
      '    source: ./models/cnn.onnx',
      '    distill: { steps: 10, epochs: 2, data: random }',
      '    lowrank: {}',
      '    quantize: { method: rtn }',
    ]);
    expect(await allSupported(() => problems(text))).toEqual([
      'R:2:28: defaults.quantize.granularity: block-wise granularity is for int4/uint4, not int8 (in models.a.variants.q8)',
      'R:6:36: models.a.prune.structure: expected N:M with 1 ≤ N < M ≤ 32, found "4:2"',
      'R:7:25: models.a.lowrank.ratio: set only one of rank, ratio or energy (rank and ratio are set)',
      'R:8:40: models.a.quantize.actOrder: actOrder only applies to method: gptq',
      'R:13:27: models.b.distill.epochs: set steps or epochs, not both',
      'R:14:5: models.b.lowrank: set one of rank, ratio or energy',
      'R:15:5: models.b.quantize: missing required key "dtype"',
    ]);
  });

  it('checks static quantization: real calibration data, int8 weights, a target with QLinear kernels', async () => {
    const text = yaml([
      'models:',
      '  a:',
      '    source: ./models/cnn.onnx',
      '    quantize: { dtype: int8, activations: uint8 }',
      '  b:',
      '    source: ./models/cnn.onnx',
      '    calibration: { data: random }',
      '    quantize: { dtype: int8, activations: uint8 }',
      '  c:',
      '    source: ./models/cnn.onnx',
      '    calibration: { data: ./data/digits-calib.jsonl }',
      '    quantize: { dtype: int4, activations: uint8, target: webgpu, calibrate: entropy, percentile: 99.9 }',
      '  d:',
      '    source: ./models/cnn.onnx',
      '    quantize: { dtype: int8, calibrate: percentile }',
      '  e:',
      '    source: ./models/cnn.onnx',
      '    calibration: { data: ./data/digits-calib.jsonl }',
      '    quantize: { dtype: q8, activations: int8, calibrate: percentile, percentile: 99.9, format: dynamic }',
      '  f:',
      '    source: ./models/cnn.onnx',
      '    quantize: { dtype: int8, activationCosine: 0.99 }',
    ]);
    expect(await allSupported(() => problems(text))).toEqual([
      'R:4:43: models.a.quantize.activations: activations: uint8 needs calibration data to measure activation ranges: set calibration.data',
      'R:8:43: models.b.quantize.activations: activation ranges measured on random inputs are not the ranges of your data: set calibration.data to real samples',
      'R:12:24: models.c.quantize.dtype: static quantization stores weights as int8 (symmetric, per channel), not int4',
      `R:12:43: models.c.quantize.activations: static quantization cannot run on target webgpu: ${WEBGPU_STATIC_REASON}`,
      'R:12:98: models.c.quantize.percentile: percentile applies to calibrate: percentile',
      'R:15:41: models.d.quantize.calibrate: calibrate applies to static quantization: set activations: uint8 or int8',
      'R:19:96: models.e.quantize.format: format dynamic contradicts static activations, which are written as QuantizeLinear/DequantizeLinear pairs (format: qdq)',
      'R:22:48: models.f.quantize.activationCosine: activationCosine applies to static quantization: set activations: uint8 or int8',
    ]);
    const ok = await allSupported(() => load(yaml(['models:', '  e:', '    source: ./models/cnn.onnx', '    calibration: { data: ./data/digits-calib.jsonl }', '    quantize: { dtype: q8, activations: int8, calibrate: percentile }'])));
    expect(ok.builds[0].steps.quantize).toMatchObject({ dtype: 'int8', alias: 'q8', activations: 'int8', calibrate: 'percentile', percentile: 99.99, activationCosine: 0.995 });
  });

  it('needs training data for distill and rejects contradictory float16', async () => {
    const text = yaml([
      'models:',
      '  a:',
      '    source: ./models/spam.onnx',
      '    distill: { teacher: original }',
      '    quantize: { dtype: float16, float16: false }',
    ]);
    expect(await allSupported(() => problems(text))).toEqual([
      'R:4:5: models.a.distill: no training data: set distill.data or calibration.data',
      'R:5:42: models.a.quantize.float16: float16: false contradicts dtype: float16',
    ]);
  });

  it('keeps odd keys such as __proto__ as plain data', async () => {
    const recipe = await load(yaml(['models:', '  m:', '    source: ./models/spam.onnx', '    calibration: { data: random, shapes: { __proto__: 3 } }']));
    const shapes = recipe.builds[0].calibration!.shapes!;
    expect(Object.getPrototypeOf(shapes)).toBe(Object.prototype);
    expect(Object.entries(shapes)).toEqual([['__proto__', 3]]);
    expect(Object.entries((normalizedStepConfig(recipe.builds[0]) as { calibration: { shapes: object } }).calibration.shapes)).toEqual([['__proto__', 3]]);
  });

  it('rejects invalid model and variant names', async () => {
    const text = yaml(['models:', '  my model:', '    source: ./models/spam.onnx', '    variants:', '      q.4: {}']);
    expect(await problems(text)).toEqual([
      'R:2:3: models.my model: expected a model name made of letters, digits, "_" and "-", found "my model"',
      'R:5:7: models.my model.variants.q.4: expected a variant name made of letters, digits, "_" and "-", found "q.4"',
    ]);
  });

  it('reports a missing recipe file as an io error', async () => {
    const error = await loadRecipe(path.join(dir, 'nope.yaml')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CompressError);
    expect((error as CompressError).kind).toBe('io');
  });
});

describe('helpers', () => {
  it('suggests close, unambiguous candidates only', () => {
    expect(suggest('int3', ['int8', 'uint8', 'int4', 'uint4', 'float16'])).toBeUndefined();
    expect(suggest('unit8', ['int8', 'uint8', 'int4', 'uint4', 'float16'])).toBe('uint8');
    expect(suggest('learning_rate', ['learningRate', 'labels'])).toBe('learningRate');
    expect(suggest('zzz', ['rank', 'ratio'])).toBeUndefined();
  });

  it('parses byte sizes', () => {
    expect(['2MB', '500kB', '1.5 MiB', '3 gib', '10b', '7'].map(parseBytes)).toEqual([2e6, 5e5, 1_572_864, 3 * 2 ** 30, 10, 7]);
    expect(parseBytes(1234)).toBe(1234);
  });

  it('keeps one error per failed anyOf: the branch the value matched, else the anyOf itself', () => {
    const ajv = new Ajv({ allErrors: true, verbose: true });
    const validate = ajv.compile({
      type: 'object',
      properties: {
        g: { anyOf: [{ enum: ['per-tensor', 'per-channel'] }, { type: 'integer', minimum: 16 }] },
        h: { anyOf: [{ type: 'string' }, { type: 'object', properties: { n: { type: 'integer' } } }] },
      },
    });
    validate({ g: true, h: { n: 'x' } });
    const kept = collapseAlternatives(validate.errors!).map((e) => `${e.instancePath} ${e.keyword}`);
    expect(kept).toEqual(['/g anyOf', '/h/n type']);
  });
});

describe('schema', () => {
  const schema = JSON.parse(readFileSync(new URL('../schemas/compress.schema.json', import.meta.url), 'utf8'));

  it('is a valid draft-07 schema that ajv compiles in strict mode', () => {
    const ajv = new Ajv({ strict: true, allowUnionTypes: true });
    ajv.addKeyword({ keyword: 'patternErrorMessage', schemaType: 'string' });
    ajv.addKeyword({ keyword: 'enumHints', schemaType: 'object' });
    expect(ajv.validateSchema(schema), ajv.errorsText()).toBe(true);
    expect(() => ajv.compile(schema)).not.toThrow();
  });

  it('describes every key, for editor completion', () => {
    const undocumented: string[] = [];
    const visit = (node: Record<string, unknown>, at: string) => {
      for (const [key, prop] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) {
        const target = prop.$ref ? schema.definitions[String(prop.$ref).split('/').pop()!] : prop;
        if (!prop.description && !target.description) undocumented.push(`${at}.${key}`);
        if (!prop.$ref) visit(prop, `${at}.${key}`);
      }
    };
    visit(schema, '');
    for (const [name, def] of Object.entries(schema.definitions)) visit(def as Record<string, unknown>, `#${name}`);
    expect(undocumented).toEqual([]);
  });

  it('accepts a $schema key at the top', async () => {
    const recipe = await load(yaml(['$schema: ./schemas/compress.schema.json', 'models: { m: { source: ./models/spam.onnx } }']));
    expect(recipe.builds[0]).toMatchObject({ id: 'm', steps: {} });
  });
});

describe('transformers.js names and layout', () => {
  it('accepts q8, q4, q4f16 and fp16 as dtype aliases', async () => {
    const recipe = await load(
      yaml([
        'models:',
        '  m:',
        '    source: ./models/spam.onnx',
        '    quantize: { dtype: q8 }',
        '    variants:',
        '      a: { quantize: { dtype: q4 } }',
        '      b: { quantize: { dtype: q4f16 } }',
        '      c: { quantize: { dtype: fp16 } }',
      ]),
    );
    const q = Object.fromEntries(recipe.builds.map((b) => [b.id, b.steps.quantize!]));
    expect(q.m).toMatchObject({ dtype: 'int8', granularity: 'per-channel', float16: false, alias: 'q8' });
    expect(q['m.a']).toMatchObject({ dtype: 'int4', granularity: 32, float16: false, alias: 'q4' });
    expect(q['m.b']).toMatchObject({ dtype: 'int4', granularity: 32, float16: true, alias: 'q4f16' });
    expect(q['m.c']).toMatchObject({ dtype: 'float16', float16: true, alias: 'fp16' });
  });

  it("`pick` sets pickVariant's order per tier: aliases resolved, variants by name, a name that matches nothing is an error at its position", async () => {
    const recipe = await load(
      yaml(['models:', '  m:', '    source: ./models/spam.onnx', '    pick: { wasm: [q8, small, main], webgpu-f16: [fp16] }', '    variants:', '      small: { quantize: { dtype: int4 } }']),
    );
    expect(recipe.builds.find((b) => b.id === 'm')!.pick).toEqual({ wasm: ['int8', 'small', 'main'], 'webgpu-f16': ['float16'] });
    const typo = await problems(yaml(['models:', '  m:', '    source: ./models/spam.onnx', '    pick: { wasm: [int8, smal] }', '    variants:', '      small: { quantize: { dtype: int4 } }']));
    expect(typo[0]).toMatch(/^R:4:26: models\.m\.pick\.wasm\.1: "smal" is neither a precision .* nor a variant of this model \(small\) or "main"; did you mean "small"\?/);
    expect(await problems(yaml(['models:', '  m:', '    source: ./models/spam.onnx', '    pick: { gpu: [int8] }']))).toEqual([expect.stringMatching(/^R:4:13: .*pick.*gpu/)]);
  });

  it('refuses bnb4 pointing at q4, and suggests the name meant for a typo', async () => {
    const bnb = await problems(yaml(['models:', '  m:', '    source: ./models/spam.onnx', '    quantize: { dtype: bnb4 }']));
    expect(bnb[0]).toMatch(/^R:4:24: models\.m\.quantize\.dtype: bnb4 \(bitsandbytes NF4, MatMulBnb4\) is not a format this tool writes: use q4/);
    const typo = await problems(yaml(['models:', '  m:', '    source: ./models/spam.onnx', '    quantize: { dtype: q4f61 }']));
    expect(typo[0]).toMatch(/models\.m\.quantize\.dtype: .*did you mean "q4f16"/);
  });

  it('layout: transformers.js names outputs as transformers.js looks for them, emitted always', async () => {
    const recipe = await load(
      yaml([
        'models:',
        '  m:',
        '    source: ./models/spam.onnx',
        '    layout: transformers.js',
        '    variants:',
        '      q8: { quantize: { dtype: q8 } }',
        '      int8: { quantize: { dtype: int8 } }',
        '      fp16: { quantize: { dtype: float16 } }',
        '      q4: { quantize: { dtype: int4 } }',
        '      q4f16: { quantize: { dtype: int4, float16: true } }',
        '      mine: { quantize: { dtype: q4 }, output: custom.onnx }',
      ]),
    );
    expect(Object.fromEntries(recipe.builds.map((b) => [b.id, [b.output, b.emit]]))).toEqual({
      m: ['onnx/spam.onnx', 'always'],
      'm.q8': ['onnx/spam_quantized.onnx', 'always'],
      'm.int8': ['onnx/spam_int8.onnx', 'always'],
      'm.fp16': ['onnx/spam_fp16.onnx', 'always'],
      'm.q4': ['onnx/spam_q4.onnx', 'always'],
      'm.q4f16': ['onnx/spam_q4f16.onnx', 'always'],
      'm.mine': ['custom.onnx', 'always'],
    });
  });
});
