/**
 * The precision search on a stateful model (src/pipeline/search/fake.ts): Silero VAD v5, `dtype: int8`
 * and a strict cosine budget, searched on one clip (test/fixtures/audio/vad-speech-noise-16k.wav) with the
 * state carried frame to frame, checked on another (vad-heldout-16k.wav: other voices, languages, noise).
 *
 * - Every search run carries its own model's state, as an app and the evaluation do. Measured with the
 *   float32 model's states instead (the pre-carried calibration samples), plain int8 looks as if it met
 *   the budget (cosine 0.9999991 on the search clip) and misses it on the held-out clip (0.9999786).
 * - v5's weights sit inside its If branches (one per sample rate): the search lifts them into inputs, so
 *   those layers are searchable.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { agreementWithin, readWav, vadFile, vadFrames, vadProbabilities } from '../bench/lib/vad.js';
import { readFileBytes } from '../src/onnx/io.js';
import { compressRecipe } from '../src/pipeline.js';
import { loadRecipe } from '../src/recipe/index.js';

const dir = mkdtempSync(join(tmpdir(), 'search-stateful-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const zoo = resolve('test/fixtures/zoo');

describe('precision search with the state carried', () => {
  it('Silero VAD v5, int8 + minCosine 0.99999: a sensitive layer kept wider meets the budget on held-out speech, at clearly fewer bytes than float32', { timeout: 120_000 }, async () => {
    const carry = '{ stateN: state }';
    writeFileSync(
      join(dir, 'compress.yaml'),
      [
        'defaults:',
        '  device: cpu',
        'models:',
        '  v5:',
        `    source: ${JSON.stringify(vadFile('v5'))}`,
        '    quantize: { dtype: int8 }',
        `    calibration: { data: ${JSON.stringify(join(zoo, 'vad-v5-tune.mjs'))}, carry: ${carry} }`,
        `    evaluate: { data: ${JSON.stringify(join(zoo, 'vad-v5.mjs'))}, samples: 600, output: output, carry: ${carry}, runs: 0 }`,
        '    budget: { minCosine: 0.99999, output: output }',
        '',
      ].join('\n'),
    );
    const [r] = await compressRecipe(await loadRecipe(join(dir, 'compress.yaml')), { cacheDir: false });
    const q = r.manifest.steps.find((s) => s.step === 'quantize')!;
    const search = q.totals!.search as { met: boolean; points: { label: string; cosine: number }[]; assignment: Record<string, string>; layers: unknown[] };
    // All 8 encoder Convs (4 per sample-rate branch) are searchable.
    expect(search.layers).toHaveLength(8);
    // Plain int8, measured with its own carried state on the search clip, misses the budget.
    expect(search.points[0].label).toMatch(/int8 \(requested\)/);
    expect(search.points[0].cosine).toBeLessThan(0.99999);
    expect(search.met).toBe(true);
    const wider = Object.entries(search.assignment).filter(([, p]) => p !== 'int8');
    expect(wider.length).toBeGreaterThan(0);
    expect(wider.length).toBeLessThanOrEqual(2);
    // Held out: the budget holds on the other clip, each model carrying its own state.
    const acc = r.manifest.accuracy!;
    expect(acc.metrics.cosine).toBeGreaterThanOrEqual(0.99999);
    const fp32 = readFileBytes(vadFile('v5')).byteLength;
    expect(r.bytes.byteLength).toBeLessThan(0.8 * fp32);
    // And the app's figure: speech probabilities within 0.05 of float32 on ≥ 99 % of held-out frames.
    const frames = vadFrames('v5', readWav(resolve('test/fixtures/audio/vad-heldout-16k.wav')));
    const ref = await vadProbabilities(readFileBytes(vadFile('v5')), 'v5', frames);
    const got = await vadProbabilities(r.bytes, 'v5', frames);
    const { within, maxAbs } = agreementWithin(ref, got);
    console.log(
      `silero v5 int8 + minCosine 0.99999: ${r.bytes.byteLength} B (${(r.bytes.byteLength / fp32).toFixed(3)}× fp32), wider: ${wider.map(([n, p]) => `${n} ${p}`).join(', ')}; ` +
        `held-out cosine ${acc.metrics.cosine.toFixed(7)}, ${(100 * within).toFixed(1)} % of ${got.length} frames within 0.05, max |Δp| ${maxAbs.toFixed(4)}`,
    );
    expect(within).toBeGreaterThanOrEqual(0.99);
  });
});
