/**
 * The fast paths of a build give the same results as the plain ones:
 * - magnitude pruning in place (StepContext.inPlace) equals the copying path, byte for byte, and really
 *   writes into the input's bytes;
 * - quantization and magnitude pruning on worker threads (the compiled CLI, dist/) write the same file
 *   and the same layer reports as on one thread;
 * - a quantize-only build (read lazily) writes the same model as a step run on an eager read.
 * Timings and memory of these paths are measured by bench/build.ts, not here.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpStack, writeSynthetic } from '../bench/lib/synthetic.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { readModel } from '../src/onnx/io.js';
import { tensorFloat32 } from '../src/onnx/tensor.js';
import { runRecipe } from '../src/pipeline.js';
import { pruneStep } from '../src/transforms/prune/index.js';
import { quantizeStep } from '../src/transforms/quantize/index.js';
import { quantizeDefaults } from '../src/recipe/index.js';
import type { PruneStep } from '../src/recipe/types.js';
import type { StepContext } from '../src/transforms/types.js';

let tmp: string;
let small: string;
let big: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'speed-paths-'));
  small = join(tmp, 'small.onnx');
  writeSynthetic(mlpStack({ layers: 2, hidden: 64, ff: 256 }), small);
  big = join(tmp, 'big.onnx');
  writeSynthetic(mlpStack({ layers: 3, hidden: 512, ff: 2048 }), big); // ≈ 25 MB of weights: over the parallel threshold
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ctx = (file: string, inPlace: boolean, original = readModel(file)): StepContext => ({ file, original, device: 'cpu', seed: 1, log: () => {}, inPlace });
const PRUNE: PruneStep = { rate: 0.5, method: 'magnitude', structure: 'unstructured', scope: 'layer', include: [], exclude: [] };

describe('fast paths', () => {
  it('magnitude pruning in place equals the copying path and writes into the input bytes', async () => {
    const copying = await pruneStep(PRUNE)(readModel(small), ctx(small, false));
    const input = readModel(small);
    const w0 = input.graph!.initializer.find((t) => t.name === 'layers.0.up.weight')!;
    const before = tensorFloat32(w0).slice();
    const inPlace = await pruneStep(PRUNE)(input, ctx(small, true, input));
    expect(Buffer.from(encodeModelToBytes(inPlace.model)).equals(Buffer.from(encodeModelToBytes(copying.model)))).toBe(true);
    // The same report; the weight error to 12 digits (the in-place path sums on SIMD, in another order).
    const rounded = (layers: typeof copying.report.layers) => layers.map((l) => ({ ...l, error: Number(l.error?.toPrecision(12)) }));
    expect(rounded(inPlace.report.layers)).toEqual(rounded(copying.report.layers));
    const after = tensorFloat32(w0);
    expect(after.filter((x) => x === 0).length).toBe(Math.round(0.5 * before.length));
    expect(after.some((x, i) => x !== before[i])).toBe(true); // the input's own bytes were pruned
  });

  it('a quantize-only build (lazy read) writes what the step writes on an eager read', async () => {
    writeFileSync(join(tmp, 'q.yaml'), 'models:\n  small:\n    source: ./small.onnx\n    device: cpu\n    simplify: false\n    quantize: { dtype: int8 }\n');
    const { results } = await runRecipe(join(tmp, 'q.yaml'), { cacheDir: false, outDir: join(tmp, 'q-out') });
    const step = await quantizeStep(quantizeDefaults('int8'))(readModel(small), ctx(small, false));
    expect(Buffer.from(readFileSync(join(tmp, 'q-out', 'small.onnx'))).equals(Buffer.from(encodeModelToBytes(step.model)))).toBe(true);
    expect(results[0].manifest.steps[0].layers).toEqual(step.report.layers.map((l) => expect.objectContaining({ name: l.name, error: l.error })));
  });

  it('quantizing on worker threads (compiled CLI) writes the same file as one thread', () => {
    const cli = resolve('dist/cli.js');
    for (const dtype of ['int8', 'int4']) {
      writeFileSync(join(tmp, `${dtype}.yaml`), `models:\n  big:\n    source: ./big.onnx\n    device: cpu\n    simplify: false\n    quantize: { dtype: ${dtype} }\n`);
      const outs = ['1', '2'].map((threads) => {
        const out = join(tmp, `${dtype}-${threads}`);
        const r = spawnSync(process.execPath, [cli, 'build', `${dtype}.yaml`, '--no-cache', '--quiet', '--out', out], { cwd: tmp, env: { ...process.env, ONNX_COMPRESS_THREADS: threads }, encoding: 'utf8' });
        expect(r.status, r.stderr).toBe(0);
        return readFileSync(join(out, 'big.onnx'));
      });
      expect(outs[0].length).toBeGreaterThan(1_000_000);
      expect(outs[1].equals(outs[0])).toBe(true);
    }
  });

  it('magnitude pruning on worker threads (compiled CLI) writes the same file and report as one thread', () => {
    const cli = resolve('dist/cli.js');
    writeFileSync(join(tmp, 'prune.yaml'), 'models:\n  big:\n    source: ./big.onnx\n    device: cpu\n    simplify: false\n    webCheck: false\n    prune: { method: magnitude, rate: 0.5 }\n');
    const outs = ['1', '3'].map((threads) => {
      const out = join(tmp, `prune-${threads}`);
      const r = spawnSync(process.execPath, [cli, 'build', 'prune.yaml', '--no-cache', '--quiet', '--out', out], { cwd: tmp, env: { ...process.env, ONNX_COMPRESS_THREADS: threads }, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return { model: readFileSync(join(out, 'big.onnx')), layers: JSON.parse(readFileSync(join(out, 'big.manifest.json'), 'utf8')).steps[0].layers };
    });
    expect(outs[0].model.length).toBeGreaterThan(20_000_000);
    expect(outs[1].model.equals(outs[0].model)).toBe(true);
    expect(outs[1].layers).toEqual(outs[0].layers);
    expect(outs[0].layers.every((l: { sparsity: number }) => Math.abs(l.sparsity - 0.5) < 1e-6)).toBe(true);
  });
});
