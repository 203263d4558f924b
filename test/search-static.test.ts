/**
 * The budget search decides activation precision per layer (static int8, src/pipeline/search/activations.ts),
 * on the user's path (compressRecipe): the Fashion-MNIST CNN calibrated and searched on t10k images
 * 0–999, the budget checked on the other 9,000 against their labels, and onnxruntime's optimized graph read
 * back. Entropy calibration clips hardest: with every activation 8-bit the logits fall to cosine ≈ 0.994,
 * below the budget, so some layer must go float, and the search picks which (each layer's 8-bit
 * activations fake-quantized alone on the search samples), keeping the others 8-bit.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFashionMnist } from '../bench/lib/fixtures.js';
import { writeNpy } from '../bench/lib/npy.js';
import type { Sample } from '../src/data/types.js';
import { CompressError } from '../src/errors.js';
import { decodeModel } from '../src/onnx/codec.js';
import { compressRecipe } from '../src/pipeline.js';
import { loadRecipe } from '../src/recipe/index.js';
import { optimizedOps } from './ort-graph.js';
import { EMULATED_NOTICE } from '../src/runtime/integer-kernels.js';

const F = new URL('./fixtures/fmnist-cnn/', import.meta.url).pathname;
let dir: string;

function npyFolder(name: string, samples: Sample[]): void {
  mkdirSync(join(dir, name), { recursive: true });
  const images = new Float32Array(samples.length * 784);
  samples.forEach((s, i) => images.set(s.feeds.image.data as Float32Array, i * 784));
  writeNpy(join(dir, name, 'image.npy'), images, [samples.length, 1, 28, 28]);
  writeNpy(join(dir, name, 'labels.npy'), Int32Array.from(samples.map((s) => s.label as number)), [samples.length]);
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'search-static-'));
  const all = loadFashionMnist(`${F}t10k-images-idx3-ubyte.gz`, `${F}t10k-labels-idx1-ubyte.gz`);
  npyFolder('calib', all.slice(0, 1000));
  npyFolder('heldout', all.slice(1000));
  copyFileSync(`${F}model.onnx`, join(dir, 'fmnist.onnx'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function recipe(name: string, quantize: string, budget: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    [
      'defaults:',
      '  device: cpu',
      'models:',
      '  fmnist:',
      '    source: fmnist.onnx',
      '    calibration: { data: ./calib, samples: 1000 }',
      `    quantize: ${quantize}`,
      '    evaluate: { data: ./heldout, runs: 0 }',
      `    budget: ${budget}`,
      '',
    ].join('\n'),
  );
  return file;
}

interface Layer {
  name: string;
  activations?: string;
  activationsReason?: string;
}
interface Search {
  met: boolean;
  chosen: number;
  points: { label: string; cosine: number; meets: boolean; activations8?: number }[];
  assignment: Record<string, string>;
  layers: { name: string; damage: Record<string, number>; chosen: string }[];
  activations: { type: string; layers: number; eightBit: number; float: number; cannot: number };
}

describe('the budget search decides activation precision per layer', () => {
  it('Fashion-MNIST CNN, entropy, minCosine 0.995: the most sensitive layer goes float, the others keep QLinear kernels; the budget holds on 9,000 held-out images', { timeout: 180_000 }, async () => {
    const [r] = await compressRecipe(await loadRecipe(recipe('bud', '{ dtype: int8, activations: uint8, calibrate: entropy }', '{ minCosine: 0.995 }')), { cacheDir: false });
    const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync('schemas/manifest.schema.json', 'utf8')));
    expect(validate(JSON.parse(JSON.stringify(r.manifest))), JSON.stringify(validate.errors)).toBe(true);
    const q = r.manifest.steps.find((s) => s.step === 'quantize')!;
    const search = q.totals!.search as Search;
    const acc = r.manifest.accuracy!;
    console.log(
      `fmnist static entropy + budget: held-out cosine ${acc.metrics.cosine.toFixed(5)}, accuracy ${acc.original.accuracy!.toFixed(4)} → ${acc.compressed.accuracy!.toFixed(4)}; ` +
        `search ${JSON.stringify(search.activations)}, points ${search.points.map((p) => `${p.label} ${p.cosine.toFixed(5)} a8 ${p.activations8}`).join('; ')}`,
    );

    // All 8-bit (the requested build) misses the budget on the search samples; the choice meets it,
    // and so does the build on the held-out images, against their labels too.
    expect(search.points[0].label).toMatch(/requested/);
    expect(search.points[0].activations8).toBe(4);
    expect(search.points[0].cosine).toBeLessThan(0.995);
    expect(search.met).toBe(true);
    expect(acc.metrics.cosine).toBeGreaterThanOrEqual(0.995);
    expect(acc.original.accuracy! - acc.compressed.accuracy!).toBeLessThanOrEqual(0.005);
    expect(r.manifest.warnings.filter((w) => w.startsWith('budget'))).toEqual([]);

    // Some layers float, the rest 8-bit; the one whose 8-bit activations cost most alone is floated.
    const a = search.activations;
    expect(a).toMatchObject({ type: 'uint8', layers: 4, cannot: 0 });
    expect(a.eightBit).toBeGreaterThanOrEqual(1);
    expect(a.float).toBeGreaterThanOrEqual(1);
    const cost = (l: Search['layers'][number]) => l.damage['int8+a8'] - l.damage.int8;
    const worst = search.layers.reduce((x, y) => (cost(y) > cost(x) ? y : x));
    expect(worst.chosen).toBe('int8');
    expect(search.assignment[worst.name]).toBe('int8');

    // The search replaced the guard, and says per layer what it decided and why, with the figure.
    const statik = q.totals!.static as { layers: number; floatActivationLayers: number; guard?: unknown };
    expect(statik.guard).toBeUndefined();
    expect(statik.layers).toBe(a.eightBit);
    const layers = q.layers as unknown as Layer[];
    for (const l of layers) {
      if (search.assignment[l.name] === 'int8+a8') expect(l.activations, l.name).toBe('uint8');
      else {
        expect(l.activations, l.name).toBe('float32');
        expect(l.activationsReason).toMatch(/^kept float by the budget search \(its 8-bit activations alone: cosine 0\.9\d+, 0\.9\d+ with float ones, on 64 search samples; budget minCosine 0\.995\)$/);
      }
    }
    expect(r.manifest.warnings.filter((w) => /keep float activations/.test(w))).toEqual([
      `quantize: static quantization: ${a.float} of 4 layers keep float activations (kept float by the budget search); see the per-layer table`,
    ]);

    // What onnxruntime runs: the 8-bit layers as QLinearConv / QGemm, the floated ones in float.
    const ops = await optimizedOps(decodeModel(r.bytes), join(dir, 'bud.optimized.onnx'));
    console.log('fmnist static entropy + budget, onnxruntime runs:', JSON.stringify(ops));
    const eightBit = (name: string) => search.assignment[name] === 'int8+a8';
    expect(ops.QLinearConv ?? 0).toBe(['/0/Conv', '/4/Conv'].filter(eightBit).length);
    expect(ops.QGemm ?? 0).toBe(['/9/Gemm', '/12/Gemm'].filter(eightBit).length);
    expect((ops.QLinearConv ?? 0) + (ops.QGemm ?? 0)).toBe(a.eightBit);
  });

  it('strict: the layers the search keeps float fail the build, as any other undelivered layer', { timeout: 180_000 }, async () => {
    const e = await compressRecipe(await loadRecipe(recipe('strict', '{ dtype: int8, activations: uint8, calibrate: entropy, strict: true }', '{ minCosine: 0.995 }')), { cacheDir: false }).catch((x) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect(e.message).toMatch(/quantize\.strict: static quantization: \d of 4 layers keep float activations \(kept float by the budget search\)/);
  });

  it('a budget the 8-bit build meets: every layer keeps 8-bit activations, no guard, no warning', { timeout: 180_000 }, async () => {
    const [r] = await compressRecipe(await loadRecipe(recipe('lax', '{ dtype: int8, activations: uint8 }', '{ maxAccuracyDrop: 0.005 }')), { cacheDir: false });
    const q = r.manifest.steps.find((s) => s.step === 'quantize')!;
    const search = q.totals!.search as Search;
    expect(search.met).toBe(true);
    expect(search.points).toHaveLength(1);
    expect(search.activations).toMatchObject({ layers: 4, eightBit: 4, float: 0 });
    expect((q.layers as unknown as Layer[]).map((l) => l.activations)).toEqual(['uint8', 'uint8', 'uint8', 'uint8']);
    expect((q.totals!.static as { guard?: unknown }).guard).toBeUndefined();
    // The only line a CPU whose 8-bit kernels saturate adds: how the build measured (integer-kernels.ts).
    expect(r.manifest.warnings.filter((w) => w !== EMULATED_NOTICE)).toEqual([]);
    expect(r.manifest.accuracy!.original.accuracy! - r.manifest.accuracy!.compressed.accuracy!).toBeLessThanOrEqual(0.005);
  });
});
