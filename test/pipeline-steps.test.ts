/**
 * Every step from a recipe, end to end through the pipeline: the Fashion-MNIST CNN pruned to half its
 * channels, then int8, with and without distillation from the original (a variant), calibrated on one
 * slice of the test set and evaluated on another.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadRecipe } from '../src/recipe/index.js';
import { compressRecipe } from '../src/pipeline.js';
import { loadFashionMnist } from '../bench/lib/fixtures.js';

const FX = 'test/fixtures/fmnist-cnn';
const dir = mkdtempSync(join(tmpdir(), 'onnx-compress-steps-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A little-endian .npy file (format 1.0). */
function npy(descr: '<f4' | '<i8', shape: number[], data: Float32Array | BigInt64Array): Buffer {
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

function writeSplit(name: string, from: number, to: number): void {
  const all = loadFashionMnist(`${FX}/t10k-images-idx3-ubyte.gz`, `${FX}/t10k-labels-idx1-ubyte.gz`, to).slice(from);
  const images = new Float32Array(all.length * 784);
  const labels = new BigInt64Array(all.length);
  all.forEach((s, i) => {
    images.set(s.feeds.image.data as Float32Array, i * 784);
    labels[i] = BigInt(s.label as number);
  });
  mkdirSync(join(dir, name));
  writeFileSync(join(dir, name, 'image.npy'), npy('<f4', [all.length, 1, 28, 28], images));
  writeFileSync(join(dir, name, 'labels.npy'), npy('<i8', [all.length], labels));
}

describe('prune → distill → quantize from a recipe', () => {
  it('distillation recovers accuracy lost to channel pruning, measured on held-out images', async () => {
    copyFileSync(`${FX}/model.onnx`, join(dir, 'model.onnx'));
    writeSplit('calib', 0, 2000);
    writeSplit('eval', 5000, 7000);
    writeFileSync(
      join(dir, 'compress.yaml'),
      [
        'models:',
        '  cnn:',
        '    source: ./model.onnx',
        // Magnitude on purpose: activation-aware channel selection (the default with calibration data)
        // loses almost nothing here (0.899 → 0.896), leaving distillation nothing to win back.
        '    prune: { rate: 0.5, structure: channels, method: magnitude }',
        '    quantize: { dtype: int8 }',
        '    calibration: { data: ./calib, samples: 2000 }',
        '    evaluate: { data: ./eval, runs: 0 }',
        '    device: cpu',
        '    variants:',
        '      distilled: { distill: { method: logits, steps: 80, learningRate: 0.001, batchSize: 64 } }',
      ].join('\n'),
    );
    const recipe = await loadRecipe(join(dir, 'compress.yaml'));
    const results = await compressRecipe(recipe, { cacheDir: false, concurrency: 1 });
    const byId = Object.fromEntries(results.map((r) => [r.build.id, r]));
    const plain = byId['cnn'].manifest;
    const distilled = byId['cnn.distilled'].manifest;

    expect(plain.steps.map((s) => s.step)).toEqual(['simplify', 'prune', 'quantize']);
    expect(distilled.steps.map((s) => s.step)).toEqual(['simplify', 'prune', 'distill', 'quantize']);
    // Half the channels and int8: far smaller than the 3.3 MB fp32 source.
    expect(plain.sizes.after.bytes).toBeLessThan(0.2 * plain.sizes.before.bytes);
    expect(distilled.sizes.after.bytes).toBe(plain.sizes.after.bytes);

    const original = plain.accuracy!.original.accuracy!;
    const pruned = plain.accuracy!.compressed.accuracy!;
    const healed = distilled.accuracy!.compressed.accuracy!;
    console.log(`fp32 ${original}, pruned 50% + int8 ${pruned}, + distilled ${healed} (2,000 held-out images)`);
    expect(plain.accuracy!.samples).toBe(2000);
    expect(original).toBeGreaterThan(0.88);
    // Distillation wins back at least half of what compression lost.
    expect(healed - pruned).toBeGreaterThanOrEqual((original - pruned) / 2);
  });
});
