/**
 * The web check of every browser build (the output run in onnxruntime-web's wasm backend, in a child
 * process, against onnxruntime-node's outputs) and the latency figures of `evaluate` (onnxruntime-node,
 * and onnxruntime-web with `evaluate: { web: true }`), on the Fashion-MNIST CNN fixture: manifests,
 * warnings, failures naming the op, the CLI table and the HTML report.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFashionMnist } from '../bench/lib/fixtures.js';
import { CompressError } from '../src/errors.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { compressRecipe, computeKey } from '../src/pipeline.js';
import { StatCache } from '../src/pipeline/hash.js';
import { reportHtml } from '../src/pipeline/report.js';
import { loadRecipe } from '../src/recipe/index.js';
import { closeWebPool, resolveOrtWeb, runWeb } from '../src/runtime/web.js';
import { cli } from './cli-run.js';

const FMNIST = resolve('test/fixtures/fmnist-cnn/model.onnx');
const IMAGES = resolve('test/fixtures/fmnist-cnn/t10k-images-idx3-ubyte.gz');
const LABELS = resolve('test/fixtures/fmnist-cnn/t10k-labels-idx1-ubyte.gz');

const validateManifest = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync(resolve('schemas/manifest.schema.json'), 'utf8')));
function expectValidManifest(m: unknown): void {
  validateManifest(JSON.parse(JSON.stringify(m)));
  expect(validateManifest.errors ?? [], JSON.stringify(validateManifest.errors)).toEqual([]);
}

let tmp: string;
let n = 0;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'webcheck-test-'));
  const lines = loadFashionMnist(IMAGES, LABELS, 8).map((s) => {
    const px = Array.from(s.feeds.image.data as Float32Array, (v) => Math.round(v * 255) / 255);
    return JSON.stringify({ inputs: { image: [[Array.from({ length: 28 }, (_, r) => px.slice(r * 28, r * 28 + 28))]] }, label: s.label });
  });
  writeFileSync(join(tmp, 'eval.jsonl'), lines.join('\n') + '\n');
});
afterAll(() => {
  closeWebPool();
  rmSync(tmp, { recursive: true, force: true });
});

/** A project folder with `files` (name → source path or bytes) and the recipe; returns its folder. */
function project(recipe: string, files: Record<string, string | Uint8Array> = { 'fmnist.onnx': FMNIST }): string {
  const dir = join(tmp, `p${n++}`);
  mkdirSync(dir);
  for (const [name, from] of Object.entries(files)) {
    if (typeof from === 'string') copyFileSync(from, join(dir, name));
    else writeFileSync(join(dir, name), from);
  }
  copyFileSync(join(tmp, 'eval.jsonl'), join(dir, 'eval.jsonl'));
  writeFileSync(join(dir, 'compress.yaml'), recipe);
  return dir;
}

const recipe = (model: string) => `defaults:\n  device: cpu\nmodels:\n  m:\n    source: fmnist.onnx\n${model}`;

async function build(dir: string) {
  const [r] = await compressRecipe(await loadRecipe(join(dir, 'compress.yaml')), { cacheDir: false });
  return r;
}

describe('web check', () => {
  it('runs every browser build in onnxruntime-web and records the difference per output', async () => {
    const r = await build(project(recipe('    quantize: { dtype: int8 }\n')));
    const w = r.manifest.webCheck!;
    expect(w).toMatchObject({ checked: true, loads: true, input: 'synthetic input' });
    expect(w.runtime).toMatch(/^onnxruntime-web \d+\.\d+\.\d+ \(wasm, 1 thread\)$/);
    expect(w.outputs).toHaveLength(1);
    expect(w.outputs![0]).toMatchObject({ name: 'logits', ok: true });
    expect(w.outputs![0].maxAbsDiff).toBeLessThanOrEqual(w.outputs![0].allowed);
    expect(w.outputs![0].allowed).toBeGreaterThan(1e-4); // 1e-3 · max |logit| + 1e-4: the logits are not all 0
    expect(w.loadMs).toBeGreaterThan(0);
    expect(r.manifest.timings.web).toBeGreaterThanOrEqual(0);
    expect(r.manifest.warnings).toEqual([]);
    expectValidManifest(r.manifest);
    expect(reportHtml([{ result: r, fileName: 'm.onnx' }])).toMatch(/Web check \(onnxruntime-web [\d.]+ \(wasm, 1 thread\), synthetic input, load [\d.]+ ms, run [\d.]+ ms\): loads and runs; against onnxruntime-node: <code>logits<\/code> max \|Δ\| [\d.e+-]+ ≤ /);
  });

  it('runs the first calibration sample, the input verification runs', async () => {
    const r = await build(project(recipe('    calibration: { data: eval.jsonl, samples: 4 }\n    quantize: { dtype: int8 }\n')));
    expect(r.manifest.webCheck).toMatchObject({ checked: true, loads: true, input: 'first calibration sample' });
    expect(r.manifest.webCheck!.outputs!.every((o) => o.ok)).toBe(true);
  });

  it('fails a build whose output onnxruntime-web cannot load, naming the op and its nodes (exit 1)', async (ctx) => {
    // onnxruntime saves a model optimized at level all in NCHWc ops that only its x86 CPU kernels have
    // (it warns that the file is for that machine alone); onnxruntime-node here loads it, wasm does not.
    const saved = join(tmp, 'fmnist-ort-all.onnx');
    await (await ort.InferenceSession.create(FMNIST, { graphOptimizationLevel: 'all', optimizedModelFilePath: saved, logSeverityLevel: 3 })).release();
    if (!readFileSync(saved).includes('com.microsoft.nchwc')) ctx.skip(); // a CPU without NCHWc kernels (not x86-64) writes none
    const dir = project(recipe('    quantize: { dtype: int8 }\n'), { 'fmnist.onnx': saved });
    const e = await build(dir).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect((e as CompressError).exitCode).toBe(1);
    expect((e as Error).message).toMatch(/fmnist\.onnx: m: the compressed model does not load in the browser: onnxruntime-web \(wasm\) has no kernel for op com\.microsoft\.nchwc:Conv \(nodes "\/2\/Relu_output_0_nchwc", "\/6\/Relu_output_0_nchwc"\)/);
    expect((e as Error).message).toMatch(/export the model again/);
    const c = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--no-cache');
    expect(c.code).toBe(1);
    expect(c.err).toMatch(/op com\.microsoft\.nchwc:Conv/);
  });

  it('warns and records outputs that differ beyond the tolerance', async () => {
    // y = x + RandomNormalLike(x): each runtime draws its own numbers.
    const vi = (name: string) => makeValueInfo(name, DataType.FLOAT, [1, 64]);
    const m = makeModel(makeGraph('g', [makeNode('RandomNormalLike', ['x'], ['r']), makeNode('Add', ['x', 'r'], ['y'])], [vi('x')], [vi('y')]));
    const dir = project(recipe('    simplify: false\n'), { 'fmnist.onnx': encodeModelToBytes(m) });
    const r = await build(dir);
    expect(r.manifest.webCheck).toMatchObject({ checked: true, loads: true });
    expect(r.manifest.webCheck!.outputs![0]).toMatchObject({ name: 'y', ok: false });
    expect(r.manifest.warnings).toHaveLength(1);
    expect(r.manifest.warnings[0]).toMatch(/^web check: output "y" differs between onnxruntime-web \(wasm\) and onnxruntime-node: max \|Δ\| = [\d.]+, allowed [\d.]+/);
    const c = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--no-cache');
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/^m\s.*\bdiffers$/m);
    expect(c.err).toMatch(/warning: m: web check: output "y" differs/);
  });

  it('is not run for quantize.target node or with webCheck: false, and the manifest says why', async () => {
    const node = await build(project(recipe('    quantize: { dtype: int8, target: node }\n')));
    expect(node.manifest.webCheck).toEqual({ checked: false, reason: 'quantize.target is node: the model is not built for the browser' });
    expect(node.manifest.warnings).toEqual([]);
    const dir = project(recipe('    webCheck: false\n    quantize: { dtype: int8 }\n'));
    const off = await build(dir);
    expect(off.manifest.webCheck).toEqual({ checked: false, reason: 'webCheck: false in the recipe' });
    expect(off.manifest.recipe.webCheck).toBe(false);
    expectValidManifest(off.manifest);
    // A cached build without the check is not served to a build with it.
    const on = await loadRecipe(join(project(recipe('    quantize: { dtype: int8 }\n')), 'compress.yaml'));
    const offRecipe = await loadRecipe(join(dir, 'compress.yaml'));
    expect((await computeKey(offRecipe.builds[0], new StatCache())).key).not.toBe((await computeKey(on.builds[0], new StatCache())).key);
  });

  it('bounds onnxruntime-web by the isolation time limit: a model that loops for ever is stopped', async () => {
    // Loop with 2^40 iterations of v + 1.
    const f = (name: string, dims: number[]) => makeValueInfo(name, DataType.FLOAT, dims);
    const body = makeGraph(
      'body',
      [makeNode('Identity', ['c_in'], ['c_out']), makeNode('Add', ['v_in', 'one'], ['v_out'])],
      [makeValueInfo('i', DataType.INT64, []), makeValueInfo('c_in', DataType.BOOL, []), f('v_in', [1])],
      [makeValueInfo('c_out', DataType.BOOL, []), f('v_out', [1])],
      [makeTensor('one', DataType.FLOAT, [1], Float32Array.of(1))],
    );
    const loop = makeNode('Loop', ['trips', 'cond', 'x'], ['y'], { attributes: [makeAttribute('body', body)] });
    const m = makeModel(
      makeGraph('g', [loop], [f('x', [1])], [f('y', [1])], [makeTensor('trips', DataType.INT64, [], BigInt64Array.of(2n ** 40n)), makeTensor('cond', DataType.BOOL, [], Uint8Array.of(1))]),
    );
    const file = join(tmp, 'forever.onnx');
    writeFileSync(file, encodeModelToBytes(m));
    const before = process.env.ONNX_COMPRESS_LIMIT_ISOLATE_MS;
    process.env.ONNX_COMPRESS_LIMIT_ISOLATE_MS = '3000';
    try {
      const t = performance.now();
      const e = await runWeb(resolveOrtWeb()!, file, { x: { type: 'float32', dims: [1], data: Float32Array.of(0) } }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(CompressError);
      expect((e as Error).message).toMatch(/^onnxruntime-web timed out after 3 s; the limit grows with the model's size \(set ONNX_COMPRESS_LIMIT_ISOLATE_MS to change the base\) \(during the web check\)$/);
      expect(performance.now() - t).toBeLessThan(20_000);
    } finally {
      if (before === undefined) delete process.env.ONNX_COMPRESS_LIMIT_ISOLATE_MS;
      else process.env.ONNX_COMPRESS_LIMIT_ISOLATE_MS = before;
    }
  });
});

describe('latency', () => {
  it('records median and p90 of both models in onnxruntime-node with the session options used', async () => {
    const r = await build(project(recipe('    quantize: { dtype: int8 }\n    evaluate: { data: eval.jsonl, runs: 5 }\n')));
    const l = r.manifest.latency!;
    expect(l).toMatchObject({ device: 'cpu', threads: 1, runs: 5, warmup: 2 });
    expect(l.runtime).toMatch(/^onnxruntime-node \d+\.\d+\.\d+$/);
    expect(l.session).toBe('graph optimization all, weight pre-packing on, 1 intra-op thread, batch of 1 (the first evaluation sample)');
    for (const x of [l.original, l.compressed]) {
      expect(x.median).toBeGreaterThan(0);
      expect(x.p90).toBeGreaterThanOrEqual(x.median);
    }
    expect(l.web).toBeUndefined();
    expectValidManifest(r.manifest);
  });

  it('evaluate: { web: true } times both models in onnxruntime-web too; the CLI and the report show both', async () => {
    const dir = project(recipe('    quantize: { dtype: int8 }\n    evaluate: { data: eval.jsonl, runs: 5, web: true, threads: 0 }\n'));
    const r = await build(dir);
    const l = r.manifest.latency!;
    expect(l.threads).toBe(0);
    expect(l.session).toMatch(/onnxruntime's default intra-op threads/);
    const w = l.web!;
    expect(w.runtime).toMatch(/^onnxruntime-web \d+\.\d+\.\d+ \(wasm, 1 thread\)$/);
    expect(w.threads).toBe(1);
    expect(w.warmup).toBeGreaterThanOrEqual(10);
    for (const x of [w.original!, w.compressed]) {
      expect(x.median).toBeGreaterThan(0);
      expect(x.p90).toBeGreaterThanOrEqual(x.median);
    }
    expect(r.manifest.timings['web-latency']).toBeGreaterThan(0);
    expectValidManifest(r.manifest);
    const html = reportHtml([{ result: r, fileName: 'm.onnx' }]);
    expect(html).toMatch(/<tr><td>onnxruntime-node [\d.]+ \(cpu\)<br><small>graph optimization all, [^<]+<\/small><\/td>(<td class="n">[\d.]+ ms<\/td>){4}<td class="n">[\d.]+×<\/td><\/tr>/);
    expect(html).toMatch(/<tr><td>onnxruntime-web [\d.]+ \(wasm, 1 thread\)<\/td>(<td class="n">[\d.]+ ms<\/td>){4}<td class="n">[\d.]+×<\/td><\/tr>/);
    const c = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--no-cache', '--json');
    expect(c.code, c.err).toBe(0);
    const [row] = JSON.parse(c.out);
    expect(row.latency.original).toBeGreaterThan(0);
    expect(row.latency.web.original).toBeGreaterThan(0);
    expect(row.latency.web.compressed).toBeGreaterThan(0);
    expect(row.webCheck).toEqual({ checked: true, agrees: true });
    const table = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--cache-dir', join(dir, 'cache'));
    expect(table.out).toMatch(/^model\s+before\s+after\s+ratio\s+accuracy\s+agreement\s+latency\s+web latency\s+web check/m);
    expect(table.out).toMatch(/^m\s.*[\d.]+ ms → [\d.]+ ms \([\d.]+×\)\s+[\d.]+ ms → [\d.]+ ms \([\d.]+×\)\s+ok$/m);
  });
});
