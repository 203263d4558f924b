/**
 * The pipeline's events (src/pipeline/events.ts) on the Fashion-MNIST CNN fixture: the sequence a cold
 * build, a cache hit, a shared in-flight build and a failed build emit; warnings (from a step, from a
 * budget) arrive as events and are the manifest's warnings; the plugin's renderer turns them into lines.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CompressError } from '../src/errors.js';
import { compressBuild, compressRecipe, type PipelineEvent } from '../src/pipeline.js';
import { overrideStep } from '../src/transforms/registry.js';
import { eventLogger } from '../src/plugin/models.js';
import { progressLine } from '../src/plugin/progress.js';
import { loadRecipe } from '../src/recipe/index.js';
import type { Recipe } from '../src/recipe/types.js';
import type { Step } from '../src/transforms/types.js';

const FMNIST = resolve('test/fixtures/fmnist-cnn/model.onnx');

let tmp: string;
let n = 0;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'pipeline-events-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => overrideStep('quantize', undefined));

async function project(recipe: string): Promise<{ recipe: Recipe; cacheDir: string }> {
  const dir = join(tmp, `p${n++}`);
  mkdirSync(dir);
  copyFileSync(FMNIST, join(dir, 'fmnist.onnx'));
  writeFileSync(join(dir, 'compress.yaml'), recipe);
  return { recipe: await loadRecipe(join(dir, 'compress.yaml')), cacheDir: join(dir, 'cache') };
}

const recipe = (extra = '') => `defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n    quantize: { dtype: int8 }\n${extra}`;

function collect(): { events: PipelineEvent[]; onEvent: (e: PipelineEvent) => void; kinds: () => string[] } {
  const events: PipelineEvent[] = [];
  return {
    events,
    onEvent: (e) => events.push(e),
    kinds: () => events.map((e) => ('step' in e && e.kind.startsWith('step-') ? `${e.kind}:${e.step}` : e.kind)),
  };
}

/** A stand-in quantize step that reports progress, a message and a warning. */
const warningStep = (): Step => async (model, ctx) => {
  ctx.progress?.(0.5);
  ctx.log('halfway');
  return { model, report: { step: 'quantize', params: {}, layers: [], skipped: [], warnings: ['2 layers left in float32'], ms: 1 } };
};

describe('pipeline events', () => {
  it('a cold build emits its phases in order, then a hit emits cache-hit', async () => {
    const p = await project(recipe());
    const cold = collect();
    const r = await compressBuild(p.recipe.builds[0], { cacheDir: p.cacheDir, recipeFile: p.recipe.file, onEvent: cold.onEvent });
    const phases = cold.kinds().filter((k) => !k.startsWith('step-progress') && !k.startsWith('step-log'));
    expect(phases).toEqual([
      'model-start',
      'step-start:hash',
      'step-done:hash',
      'step-start:read',
      'step-done:read',
      'step-start:simplify', // on by default
      'step-done:simplify',
      'step-start:quantize',
      'step-done:quantize',
      'step-start:encode',
      'step-done:encode',
      'step-start:write',
      'step-done:write',
      'step-start:verify',
      'step-done:verify',
      'verify',
      'step-start:web', // what is left of the web check (it ran beside verify)
      'step-done:web',
      'step-start:sizes',
      'step-done:sizes',
      'measure',
      'model-done',
    ]);
    expect(cold.events.every((e) => e.model === 'fmnist')).toBe(true);
    const elapsed = cold.events.map((e) => e.elapsedMs);
    expect(elapsed).toEqual([...elapsed].sort((a, b) => a - b));
    expect(cold.events.find((e) => e.kind === 'verify')).toMatchObject({ device: 'cpu' });
    const measure = cold.events.find((e) => e.kind === 'measure');
    expect(measure).toMatchObject({ before: r.manifest.sizes.before, after: r.manifest.sizes.after });
    expect(cold.events.at(-1)).toMatchObject({ kind: 'model-done', cached: false, key: r.key, bytesBefore: r.manifest.sizes.before.bytes, bytesAfter: r.bytes.byteLength });
    const done = cold.events.find((e) => e.kind === 'step-done' && e.step === 'quantize');
    expect(done).toMatchObject({ ms: r.manifest.timings.quantize });

    const hit = collect();
    const again = await compressBuild(p.recipe.builds[0], { cacheDir: p.cacheDir, onEvent: hit.onEvent });
    expect(again.cached).toBe(true);
    expect(hit.kinds()).toEqual(['model-start', 'step-start:hash', 'step-done:hash', 'cache-hit', 'model-done']);
    expect(hit.events.at(-1)).toMatchObject({ cached: true, key: r.key });
  });

  it("a step's progress, messages and warnings arrive as events; warnings are the manifest's", async () => {
    const p = await project(recipe());
    overrideStep('quantize', warningStep as never);
    const c = collect();
    const r = await compressBuild(p.recipe.builds[0], { cacheDir: false, onEvent: c.onEvent });
    expect(c.events.filter((e) => e.kind === 'step-progress' && e.step === 'quantize')).toMatchObject([{ step: 'quantize', fraction: 0.5 }]);
    expect(c.events.filter((e) => e.kind === 'step-log')).toMatchObject([{ step: 'quantize', message: 'halfway' }]);
    const warnings = c.events.filter((e) => e.kind === 'warning');
    expect(warnings).toMatchObject([{ model: 'fmnist', step: 'quantize', message: 'quantize: 2 layers left in float32' }]);
    expect(r.manifest.warnings).toEqual(['quantize: 2 layers left in float32']);
    // Warnings come before the end of their step's build.
    expect(c.kinds().indexOf('warning')).toBeLessThan(c.kinds().indexOf('model-done'));
  });

  it('a budget warning is an event (hit or miss); a budget error ends the build with an error event', async () => {
    const p = await project(recipe('    budget: { maxBytes: 1000, onFail: warn }\n'));
    for (const cached of [false, true]) {
      const c = collect();
      const r = await compressBuild(p.recipe.builds[0], { cacheDir: p.cacheDir, recipeFile: p.recipe.file, onEvent: c.onEvent });
      expect(r.cached).toBe(cached);
      const message = `budget: size ${r.bytes.byteLength} > maxBytes 1000`;
      expect(c.events.filter((e) => e.kind === 'warning')).toMatchObject([{ step: 'budget', message }]);
      expect(r.manifest.warnings).toEqual([message]);
    }
    const c = collect();
    const e = await compressBuild(p.recipe.builds[0], { cacheDir: p.cacheDir, recipeFile: p.recipe.file, budget: 'error', onEvent: c.onEvent }).catch((x) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect(c.kinds().at(-1)).toBe('error');
    expect(c.kinds()).not.toContain('model-done');
    expect(c.events.at(-1)).toMatchObject({ kind: 'error', model: 'fmnist', error: e });
  });

  it('a build with the same key in flight is shared; compressRecipe reports each failure and each result', async () => {
    const p = await project(recipe('  missing:\n    source: fmnist.onnx\n    quantize: { dtype: int8 }\n'));
    overrideStep('quantize', warningStep as never); // fast: the events, not the quantizer, are under test
    const first = collect();
    const second = collect();
    const build = p.recipe.builds[0];
    const [a, b] = await Promise.all([compressBuild(build, { cacheDir: false, onEvent: first.onEvent }), compressBuild(build, { cacheDir: false, onEvent: second.onEvent })]);
    expect(a.file).toBe(b.file); // one output file, its bytes read on demand by each result
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
    expect(first.kinds()).toContain('step-done:quantize');
    expect(second.kinds()).toEqual(['model-start', 'step-start:hash', 'step-done:hash', 'shared', 'model-done']);

    const results: string[] = [];
    const r = collect();
    const err = await compressRecipe(p.recipe, {
      cacheDir: false,
      onEvent: r.onEvent,
      onResult: (res) => {
        results.push(res.build.id);
        if (res.build.id === 'missing') throw new Error('disk full');
      },
    }).catch((x) => x);
    expect(err.message).toBe('disk full');
    expect(results.sort()).toEqual(['fmnist', 'missing']);
    expect(r.events.filter((e) => e.kind === 'error')).toMatchObject([{ model: 'missing', error: err }]);
  });

  it('the plugin renders warnings and long steps as lines, nothing else', () => {
    const lines: string[] = [];
    const log = eventLogger((level, m) => lines.push(`${level} ${m}`));
    const ev = (e: Record<string, unknown>) => log({ model: 'spam', elapsedMs: 0, ...e } as PipelineEvent);
    ev({ kind: 'model-start' });
    ev({ kind: 'step-start', step: 'distill' });
    ev({ kind: 'step-progress', step: 'distill', fraction: 0.5 }); // under 5 s: quiet
    ev({ kind: 'step-log', step: 'distill', message: 'loss 0.1' });
    ev({ kind: 'step-done', step: 'distill', ms: 10 });
    ev({ kind: 'warning', step: 'quantize', message: 'quantize: careful' });
    ev({ kind: 'model-done', cached: false, bytesBefore: 1, bytesAfter: 1, key: 'k' });
    expect(lines).toEqual(['warn spam: quantize: careful']);
  });

  it('on a terminal, a step running over a second gets a progress bar redrawn in place, erased before log lines and at the end', () => {
    let out = '';
    let t = 0;
    const stream = { write: (s: string) => ((out += s), true), columns: 100, isTTY: true } as unknown as NodeJS.WriteStream;
    const bar = progressLine(stream, () => t);
    const lines: string[] = [];
    const log = eventLogger((level, m) => {
      bar.clear();
      lines.push(`${level} ${m}`);
    }, bar);
    const ev = (e: Record<string, unknown>) => log({ model: 'spam', elapsedMs: 0, ...e } as PipelineEvent);
    ev({ kind: 'step-start', step: 'quantize' });
    expect(out).toBe(''); // a short step draws nothing
    t = 1500;
    ev({ kind: 'step-progress', step: 'quantize', fraction: 0.35 });
    expect(out).toBe('\r\x1b[K[onnx-compress] spam: quantize [#######-------------] 35% 2 s');
    t = 1550;
    ev({ kind: 'step-progress', step: 'quantize', fraction: 0.4 }); // at most 10 redraws a second
    expect(out.split('\r').length).toBe(2);
    t = 1700;
    ev({ kind: 'warning', step: 'quantize', message: 'careful' });
    expect(out.endsWith('\r\x1b[K')).toBe(true);
    expect(lines).toEqual(['warn spam: careful']);
    t = 2600;
    ev({ kind: 'step-progress', step: 'quantize', fraction: 1 });
    expect(out.endsWith('[####################] 100% 3 s')).toBe(true);
    ev({ kind: 'model-done', cached: false, bytesBefore: 1, bytesAfter: 1, key: 'k' });
    expect(out.endsWith('\r\x1b[K')).toBe(true);
  });
});
