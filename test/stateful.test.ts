/**
 * Streaming / stateful models: `carry: { output: input }` under `evaluate` and `calibration`, and `shapes`
 * wherever random data is. On Silero VAD v5 (input [1, 576], state [2, 1, 128] → stateN, sr), the model
 * vad-web runs frame by frame with its state carried.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sample } from '../src/data/types.js';
import { loadSamples } from '../src/data/load.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { readModel } from '../src/onnx/io.js';
import type { ModelProto } from '../src/onnx/types.js';
import { compressRecipe } from '../src/pipeline.js';
import { overrideStep } from '../src/transforms/registry.js';
import { loadRecipe, parseRecipe } from '../src/recipe/index.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { carryStates } from '../src/runtime/carry.js';
import { quantizeStep } from '../src/transforms/quantize/index.js';
import type { StepContext } from '../src/transforms/types.js';

const require = createRequire(import.meta.url);
const V5 = require.resolve('@ricky0123/vad-web/dist/silero_vad_v5.onnx');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'stateful-'));
  copyFileSync(V5, join(tmp, 'vad.onnx'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** 40 frames of a 440 Hz tone with a rising amplitude, zero state on every sample. */
function frames(n = 40): Sample[] {
  return Array.from({ length: n }, (_, f) => {
    const x = Float32Array.from({ length: 576 }, (_, i) => 0.02 * (f % 20) * Math.sin((2 * Math.PI * 440 * (f * 512 + i)) / 16000));
    return {
      feeds: {
        input: new ort.Tensor('float32', x, [1, 576]),
        state: new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]),
        sr: new ort.Tensor('int64', BigInt64Array.of(16000n), []),
      },
    };
  });
}

describe('carry in evaluation', () => {
  it('runs each model with its own carried state: metrics equal a hand-written streaming loop', async () => {
    const original = readModel(V5);
    const { model } = await quantizeStep(quantizeDefaults('int8'))(original, { file: V5, original, device: 'cpu', seed: 0, log: () => {} });
    const samples = frames();
    const carried = await evaluateModels(original, model, samples, { carry: { stateN: 'state' }, runs: 0 });
    const independent = await evaluateModels(original, model, samples, { runs: 0 });

    // The loop an app writes: each model feeds its own stateN back.
    const loop = async (bytes: Uint8Array) => {
      const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
      let state = samples[0].feeds.state;
      const probs: number[] = [];
      for (const x of samples) {
        const r = await s.run({ ...x.feeds, state });
        state = r.stateN;
        probs.push((r.output.data as Float32Array)[0]);
      }
      await s.release();
      return probs;
    };
    const a = await loop(encodeModelToBytes(original));
    const b = await loop(encodeModelToBytes(model));
    const maxAbs = Math.max(...a.map((p, i) => Math.abs(p - b[i])));
    expect(carried.perOutput.output.maxAbs).toBeCloseTo(maxAbs, 6);
    // With the state carried the probabilities move (speech builds up), unlike independent frames.
    expect(Math.max(...a) - Math.min(...a)).toBeGreaterThan(0.01);
    expect(carried.perOutput.output.maxAbs).not.toBeCloseTo(independent.perOutput.output.maxAbs, 6);
  });

  it('names an unknown carried output and suggests the right one', async () => {
    const original = readModel(V5);
    await expect(evaluateModels(original, original, frames(2), { carry: { stateM: 'state' }, runs: 0 })).rejects.toThrow(
      /carry: "stateM" is not an output of the original model \(did you mean "stateN"\?\)/,
    );
  });
});

describe('carry in calibration', () => {
  it('through the pipeline: the steps see each frame with the state the source model carried into it', async () => {
    const data = new URL('./fixtures/zoo/vad-v5.mjs', import.meta.url).pathname;
    const file = join(tmp, 'cal.yaml');
    writeFileSync(file, ['models:', '  vad:', '    source: ./vad.onnx', '    quantize: { dtype: int8 }', `    calibration: { data: ${JSON.stringify(data)}, samples: 3, carry: { stateN: state } }`, ''].join('\n'));
    let seen: StepContext['calibration'];
    overrideStep('quantize', () => async (model: ModelProto, ctx: StepContext) => {
      seen = ctx.calibration;
      return { model, report: { step: 'quantize', params: {}, layers: [], skipped: [], warnings: [], ms: 0 } };
    });
    try {
      await compressRecipe(await loadRecipe(file), { cacheDir: false });
    } finally {
      overrideStep('quantize', undefined);
    }
    expect(seen).toHaveLength(3);
    const s = await ort.InferenceSession.create(V5, { intraOpNumThreads: 1 });
    const r0 = await s.run(seen![0].feeds);
    const r1 = await s.run({ ...seen![1].feeds, state: r0.stateN });
    await s.release();
    expect((seen![0].feeds.state.data as Float32Array).every((v) => v === 0)).toBe(true);
    expect(Array.from(seen![1].feeds.state.data as Float32Array)).toEqual(Array.from(r0.stateN.data as Float32Array));
    expect(Array.from(seen![2].feeds.state.data as Float32Array)).toEqual(Array.from(r1.stateN.data as Float32Array));
    expect((seen![2].feeds.state.data as Float32Array).some((v) => v !== 0)).toBe(true);
  });

  it('writes the states the model carries into each sample (the first keeps its own)', async () => {
    const samples = frames(5);
    const out = await carryStates(encodeModelToBytes(readModel(V5)), samples, { stateN: 'state' });
    expect(out[0]).toBe(samples[0]);
    const s = await ort.InferenceSession.create(V5, { intraOpNumThreads: 1 });
    const r0 = await s.run(samples[0].feeds);
    await s.release();
    expect(Array.from(out[1].feeds.state.data as Float32Array)).toEqual(Array.from(r0.stateN.data as Float32Array));
    expect(out[1].feeds.input).toBe(samples[1].feeds.input);
  });
});

it('random data with carry: carried inputs start at zero, the others are noise', async () => {
  const inputs = [
    { name: 'input', type: 'float32', dims: [1, 'n'] },
    { name: 'state', type: 'float32', dims: [2, 1, 128] },
  ];
  const [s] = await loadSamples({ data: 'random', samples: 1, shapes: { n: 576 }, carry: { stateN: 'state' } }, inputs);
  expect((s.feeds.state.data as Float32Array).every((v) => v === 0)).toBe(true);
  expect((s.feeds.input.data as Float32Array).some((v) => v !== 0)).toBe(true);
  expect(s.feeds.input.dims).toEqual([1, 576]);
});

describe('recipes: carry and shapes', () => {
  const write = (name: string, text: string) => {
    const file = join(tmp, name);
    writeFileSync(file, text);
    return file;
  };

  it('accepts shapes and carry under evaluate and calibration, shapes under distill', () => {
    const r = parseRecipe(
      [
        'models:',
        '  vad:',
        '    source: ./vad.onnx',
        '    quantize: { dtype: int8 }',
        '    calibration: { data: random, samples: 8, shapes: { batch: 1 }, carry: { stateN: state } }',
        '    evaluate: { data: random, samples: 8, shapes: { batch: 1 }, carry: { stateN: state } }',
        '    distill: { data: random, shapes: { batch: 1 }, steps: 1 }',
        '',
      ].join('\n'),
      join(tmp, 'a.yaml'),
    );
    const b = r.builds[0];
    expect(b.evaluate?.carry).toEqual({ stateN: 'state' });
    expect(b.evaluate?.shapes).toEqual({ batch: 1 });
    expect(b.calibration?.carry).toEqual({ stateN: 'state' });
    expect(b.steps.distill?.shapes).toEqual({ batch: 1 });
  });

  it('two outputs carried into one input: an error at the second, with line:col', () => {
    const text = ['models:', '  vad:', '    source: ./vad.onnx', '    evaluate:', '      data: random', '      carry: { stateN: state, output: state }', ''].join('\n');
    expect(() => parseRecipe(text, join(tmp, 'b.yaml'))).toThrow(/b\.yaml:6:31: models\.vad\.evaluate\.carry\.output: input "state" is already carried from "stateN"/);
  });

  it('an unknown carry name in a build: a recipe error at its line:col', async () => {
    const file = write('c.yaml', ['models:', '  vad:', '    source: ./vad.onnx', '    quantize: { dtype: int8 }', '    evaluate:', '      data: random', '      samples: 4', '      carry: { stateX: state }', ''].join('\n'));
    const recipe = await loadRecipe(file);
    await expect(compressRecipe(recipe, { cacheDir: false })).rejects.toThrow(
      /c\.yaml:8:16: evaluate\.carry\.stateX: "stateX" is not an output of the model \(did you mean "stateN"\?\)/,
    );
  });

  it('random evaluate data on symbolic dims: the error points at the recipe; shapes is accepted there', async () => {
    const bad = write('d.yaml', ['models:', '  vad:', '    source: ./vad.onnx', '    quantize: { dtype: int8 }', '    evaluate:', '      data: random', '      samples: 4', ''].join('\n'));
    await expect(compressRecipe(await loadRecipe(bad), { cacheDir: false })).rejects.toThrow(/d\.yaml:6:\d+: evaluate\.data: random data: input "input" has symbolic dim/);
    const good = write(
      'e.yaml',
      ['models:', '  vad:', '    source: ./vad.onnx', '    quantize: { dtype: int8 }', '    evaluate:', '      data: random', '      samples: 4', '      runs: 0', '      shapes: { "?": 576 }', '      carry: { stateN: state }', ''].join('\n'),
    );
    const recipe = await loadRecipe(good);
    expect(recipe.builds[0].evaluate?.shapes).toEqual({ '?': 576 });
  });
});
