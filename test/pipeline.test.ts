/**
 * The pipeline end to end on the Fashion-MNIST CNN fixture: plain copies, real and stand-in steps,
 * verification, evaluation and budgets, the cache (hits do no work, corrupt entries are rebuilt),
 * in-flight sharing, determinism, and manifests checked against schemas/manifest.schema.json and
 * against the files they describe.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Ajv } from 'ajv';
import * as ort from 'onnxruntime-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CompressError } from '../src/errors.js';
import { loadFashionMnist } from '../bench/lib/fixtures.js';
import { decodeModel, encodeModelToBytes } from '../src/onnx/codec.js';
import { writeModel } from '../src/onnx/io.js';
import { makeTensor, tensorFloat32 } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { reportHtml } from '../src/pipeline/report.js';
import { compressBuild, compressionCount, compressRecipe, computeKey, writeResult, type CompressResult, type PipelineEvent } from '../src/pipeline.js';
import { StatCache } from '../src/pipeline/hash.js';
import { overrideStep } from '../src/transforms/registry.js';
import { loadRecipe } from '../src/recipe/index.js';
import type { Build, Recipe } from '../src/recipe/types.js';
import type { Step, StepReport } from '../src/transforms/types.js';

const FMNIST = resolve('test/fixtures/fmnist-cnn/model.onnx');
const IMAGES = resolve('test/fixtures/fmnist-cnn/t10k-images-idx3-ubyte.gz');
const LABELS = resolve('test/fixtures/fmnist-cnn/t10k-labels-idx1-ubyte.gz');

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
const validateManifest = ajv.compile(JSON.parse(readFileSync(resolve('schemas/manifest.schema.json'), 'utf8')));
function expectValidManifest(m: unknown): void {
  const ok = validateManifest(JSON.parse(JSON.stringify(m)));
  expect(validateManifest.errors ?? [], JSON.stringify(validateManifest.errors)).toEqual([]);
  expect(ok).toBe(true);
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

let tmp: string;
let n = 0;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'pipeline-test-'));
  // 16 labeled images as JSONL evaluation data.
  const samples = loadFashionMnist(IMAGES, LABELS, 16);
  const lines = samples.map((s) => {
    const px = Array.from(s.feeds.image.data as Float32Array, (v) => Math.round(v * 255) / 255);
    const rows = Array.from({ length: 28 }, (_, r) => px.slice(r * 28, r * 28 + 28));
    return JSON.stringify({ inputs: { image: [[rows]] }, label: s.label });
  });
  writeFileSync(join(tmp, 'eval.jsonl'), lines.join('\n') + '\n');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
afterEach(() => {
  overrideStep('quantize', undefined);
});

/** A fresh project folder: the fixture model, a recipe, and the eval data; returns the loaded recipe. */
async function project(recipe: string): Promise<{ dir: string; recipe: Recipe; cacheDir: string }> {
  const dir = join(tmp, `p${n++}`);
  mkdirSync(dir);
  copyFileSync(FMNIST, join(dir, 'fmnist.onnx'));
  copyFileSync(join(tmp, 'eval.jsonl'), join(dir, 'eval.jsonl'));
  writeFileSync(join(dir, 'compress.yaml'), recipe);
  return { dir, recipe: await loadRecipe(join(dir, 'compress.yaml')), cacheDir: join(dir, 'cache') };
}

/** No steps at all: simplify (on by default) turned off. */
const PLAIN = `defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n    simplify: false\n`;
const WITH_QUANT = (extra = '') => `defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n    quantize: { dtype: int8 }\n${extra}`;

async function ortRun(bytes: Uint8Array, image: ort.Tensor): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  try {
    const out = await s.run({ image });
    return out[s.outputNames[0]].data as Float32Array;
  } finally {
    await s.release();
  }
}

/** A stand-in quantize step: counts its calls; `edit` may change the model (without touching shared bytes). */
function spyStep(edit?: (m: ModelProto) => void): { calls: number; factory: (p: unknown) => Step } {
  const spy = {
    calls: 0,
    factory: (params: unknown): Step => async (model) => {
      spy.calls++;
      edit?.(model);
      const report: StepReport = {
        step: 'quantize',
        params: params as Record<string, unknown>,
        layers: [{ name: 'fc', op: 'Gemm', weight: 'w', shape: [10, 256], dtypeBefore: 'float32', dtypeAfter: 'float32', bytesBefore: 10240, bytesAfter: 10240, error: 0 }],
        skipped: [{ name: 'conv', reason: 'stand-in' }],
        warnings: [],
        ms: 1,
      };
      return { model, report };
    },
  };
  return spy;
}

/** Negates the last 2-D float initializer (the classifier): predictions flip, the model stays valid. */
function negateClassifier(m: ModelProto): void {
  const inits = m.graph!.initializer;
  const i = inits.map((t, j) => [t, j] as const).filter(([t]) => t.dims.length === 2 && t.dataType === 1).pop()![1];
  const t = inits[i];
  inits[i] = makeTensor(t.name!, 1, t.dims.map(Number), tensorFloat32(t).map((v) => -v));
}

describe('plain copy', () => {
  let result: CompressResult;
  let cacheDir: string;
  let dir: string;
  beforeAll(async () => {
    const p = await project(PLAIN);
    ({ cacheDir, dir } = p);
    [result] = await compressRecipe(p.recipe, { cacheDir });
  });

  it('outputs the re-encoded source, which ORT runs to identical outputs', async () => {
    const source = readFileSync(FMNIST);
    expect(result.cached).toBe(false);
    expect(Buffer.from(result.bytes).equals(Buffer.from(encodeModelToBytes(decodeModel(source))))).toBe(true);
    const [sample] = loadFashionMnist(IMAGES, LABELS, 1);
    const [a, b] = [await ortRun(source, sample.feeds.image), await ortRun(result.bytes, sample.feeds.image)];
    expect(Array.from(b)).toEqual(Array.from(a));
  });

  it('writes a manifest that validates and matches the written files', () => {
    const out = join(dir, 'out');
    const { file, manifestFile } = writeResult(result, out);
    expect(file).toBe(join(out, 'fmnist.onnx'));
    expect(manifestFile).toBe(join(out, 'fmnist.manifest.json'));
    const m = JSON.parse(readFileSync(manifestFile, 'utf8'));
    expectValidManifest(m);
    const bytes = readFileSync(file);
    expect(m.output).toEqual({ file: 'fmnist.onnx', sha256: sha(bytes), bytes: bytes.length });
    expect(m.source).toEqual({ file: 'fmnist.onnx', sha256: sha(readFileSync(FMNIST)), bytes: statSync(FMNIST).size });
    expect(m.sizes.after.bytes).toBe(bytes.length);
    expect(m.sizes.before.bytes).toBe(statSync(FMNIST).size);
    expect(m.sizes.before.bytesByDtype.float32).toBeGreaterThan(3_000_000);
    expect(m.sizes.before.parameters).toBeGreaterThan(800_000);
    expect(m.sizes.after.gzip).toBeGreaterThan(0);
    expect(m.sizes.compression).toMatchObject({ gzipLevel: 6, brotliQuality: 5 });
    expect(m).toMatchObject({ id: 'fmnist', name: 'fmnist', device: 'cpu', steps: [], cache: { key: result.key }, tool: { name: 'unplugin-onnx-compress' } });
    expect(m.recipe).toMatchObject({ steps: {}, device: 'cpu' });
    expect(m.timings.total).toBeGreaterThan(0);
  });

  it('leaves an output file that holds the same bytes alone, and rewrites one that differs anywhere', async () => {
    const r = await compressBuild(result.build, { cacheDir: false }); // a temp file: no stat cache to ask
    const out = join(dir, 'out-same');
    const { file } = writeResult(r, out);
    const st = statSync(file);
    writeResult(r, out);
    const st2 = statSync(file);
    expect([st2.ino, st2.mtimeMs]).toEqual([st.ino, st.mtimeMs]);
    for (const at of [0, st.size - 1]) {
      const bytes = readFileSync(file);
      bytes[at] ^= 0xff; // same size, one byte other, a file of its own (the output was a link to the build's temp file)
      writeFileSync(`${file}.new`, bytes);
      renameSync(`${file}.new`, file);
      writeResult(r, out);
      expect(sha(readFileSync(file))).toBe(r.manifest.output.sha256);
    }
  });

  it('is served from the cache the second time, without compressing', async () => {
    const before = compressionCount();
    const entry = join(cacheDir, `${result.key}.onnx`);
    const st = statSync(entry);
    const b = await loadRecipe(join(dir, 'compress.yaml'));
    const again = await compressBuild(b.builds[0], { cacheDir, recipeFile: b.file });
    expect(again.cached).toBe(true);
    expect(compressionCount()).toBe(before);
    expect(again.key).toBe(result.key);
    expect(Buffer.from(again.bytes).equals(Buffer.from(result.bytes))).toBe(true);
    expect(again.manifest).toEqual(result.manifest);
    const st2 = statSync(entry); // the entry was read, not rewritten
    expect([st2.ino, st2.mtimeMs]).toEqual([st.ino, st.mtimeMs]);
  });

  it('rebuilds a truncated cache entry', async () => {
    const entry = join(cacheDir, `${result.key}.onnx`);
    truncateSync(entry, 1000);
    const before = compressionCount();
    const events: PipelineEvent[] = [];
    const again = await compressBuild(result.build, { cacheDir, onEvent: (e) => events.push(e) });
    expect(again.cached).toBe(false);
    expect(compressionCount()).toBe(before + 1);
    expect(events.find((e) => e.kind === 'warning')).toMatchObject({ step: 'cache', message: expect.stringMatching(/^cache entry \w{12} is incomplete or corrupt/) });
    expect(again.manifest.warnings).toEqual([]); // about the cache, not the output
    expect(sha(readFileSync(entry))).toBe(result.manifest.output.sha256);
    expect((await compressBuild(result.build, { cacheDir })).cached).toBe(true);
  });

  it('rebuilds an entry whose manifest is cut short, and one whose model changed in place', async () => {
    const manifest = join(cacheDir, `${result.key}.json`);
    writeFileSync(manifest, readFileSync(manifest, 'utf8').slice(0, 100));
    expect((await compressBuild(result.build, { cacheDir })).cached).toBe(false);
    const entry = join(cacheDir, `${result.key}.onnx`);
    const bytes = readFileSync(entry);
    bytes[bytes.length - 5] ^= 0xff; // same size, other content, new mtime
    writeFileSync(entry, bytes);
    const again = await compressBuild(result.build, { cacheDir });
    expect(again.cached).toBe(false);
    expect(sha(again.bytes)).toBe(result.manifest.output.sha256);
  });

  it('is deterministic without a cache', async () => {
    const a = await compressBuild(result.build, { cacheDir: false });
    const b = await compressBuild(result.build, { cacheDir: false });
    expect(a.cached || b.cached).toBe(false);
    expect(sha(a.bytes)).toBe(sha(b.bytes));
    expect(a.key).toBe(result.key);
  });
});

describe('cache key', () => {
  it('depends on content and step config, not on paths or the device', async () => {
    const p1 = await project(WITH_QUANT());
    const p2 = await project(WITH_QUANT().replace('device: cpu', 'device: auto'));
    const p3 = await project(WITH_QUANT().replace('dtype: int8', 'dtype: uint8'));
    const stats = new StatCache();
    const key = async (b: Build) => (await computeKey(b, stats)).key;
    const k1 = await key(p1.recipe.builds[0]);
    expect(await key(p2.recipe.builds[0])).toBe(k1); // other folder, other device
    expect(await key(p3.recipe.builds[0])).not.toBe(k1);
    // Same path, other bytes.
    const src = p2.recipe.builds[0].source;
    const bytes = readFileSync(src);
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(src, bytes);
    expect(await key(p2.recipe.builds[0])).not.toBe(k1);
  });

  it('follows external data files of the source', async () => {
    const p = await project(PLAIN);
    const src = join(p.dir, 'ext.onnx');
    writeModel(decodeModel(readFileSync(FMNIST)), src, { externalData: true });
    writeFileSync(join(p.dir, 'compress.yaml'), PLAIN.replace('fmnist.onnx', 'ext.onnx'));
    const build = (await loadRecipe(join(p.dir, 'compress.yaml'))).builds[0];
    const stats = new StatCache(p.cacheDir);
    const k1 = await computeKey(build, stats);
    expect(k1.deps).toEqual(['ext.onnx.data']);
    stats.flush();
    // The output is the model with its weights inline, and runs like the source.
    const r = await compressBuild(build, { cacheDir: p.cacheDir });
    expect(sha(r.bytes)).toBe(sha(encodeModelToBytes(decodeModel(readFileSync(FMNIST)))));
    expect(r.manifest.sizes.before.bytes).toBe(statSync(src).size + statSync(`${src}.data`).size);
    // Changing only the data file changes the key (its list of files is remembered, and re-checked).
    const data = readFileSync(`${src}.data`);
    data[data.length - 1] ^= 1;
    writeFileSync(`${src}.data`, data);
    const k2 = await computeKey(build, new StatCache(p.cacheDir));
    expect(k2.deps).toEqual(['ext.onnx.data']);
    expect(k2.key).not.toBe(k1.key);
    expect((await compressBuild(build, { cacheDir: p.cacheDir })).cached).toBe(false);
  });

  /** A project whose source, big.onnx, references ext.onnx.data and is large (a 65 MiB tensor inline). */
  async function largeSource(): Promise<{ src: string; model: ModelProto; build: Build }> {
    const p = await project(PLAIN);
    const src = join(p.dir, 'big.onnx');
    writeModel(decodeModel(readFileSync(FMNIST)), join(p.dir, 'ext.onnx'), { externalData: true });
    const model = decodeModel(readFileSync(join(p.dir, 'ext.onnx')));
    model.graph!.initializer.push(makeTensor('ballast', 1, [65 * 2 ** 18], new Float32Array(65 * 2 ** 18)));
    writeFileSync(src, encodeModelToBytes(model));
    writeFileSync(join(p.dir, 'compress.yaml'), PLAIN.replace('fmnist.onnx', 'big.onnx'));
    return { src, model, build: (await loadRecipe(join(p.dir, 'compress.yaml'))).builds[0] };
  }

  // From 64 MiB on, the files are found by a skim of the model's structure, not a search of its bytes.
  it('follows external data files of a large source too, and a large source without any names none', async () => {
    const { src, model, build } = await largeSource();
    expect(statSync(src).size).toBeGreaterThan(64 * 2 ** 20);
    expect((await computeKey(build, new StatCache())).deps).toEqual(['ext.onnx.data']);
    model.graph!.initializer = model.graph!.initializer.filter((t) => t.dataLocation !== 1);
    writeFileSync(src, encodeModelToBytes(model));
    expect((await computeKey(build, new StatCache())).deps).toEqual([]);
  });

  // Without a cache nothing is looked up by the key: a large source is hashed while the build runs.
  it('without a cache, waits for no large source hash, and the manifest carries the key and hash a cached build has', async () => {
    const { src, build } = await largeSource();
    const full = await computeKey(build, new StatCache());
    expect(full.final).toBeUndefined();
    const deferred = await computeKey(build, new StatCache(), undefined, { deferSource: true });
    expect(deferred.final).toBeDefined();
    expect(deferred.key).not.toBe(full.key); // a stand-in, from the file's path and stat
    expect({ deps: deferred.deps, seed: deferred.seed, bytes: deferred.source.bytes }).toEqual({ deps: full.deps, seed: full.seed, bytes: full.source.bytes });
    expect(await deferred.final).toEqual(full);
    const r = await compressBuild(build, { cacheDir: false });
    expect(r.key).toBe(full.key);
    expect(r.manifest.cache.key).toBe(full.key);
    expect(r.manifest.source.sha256).toBe(sha(readFileSync(src)));
    // A small source (hashed with its scan for external data) is awaited as before.
    expect((await computeKey((await project(PLAIN)).recipe.builds[0], new StatCache(), undefined, { deferSource: true })).final).toBeUndefined();
  }, 60_000);

  it('depends on the calibration data bytes, not their path', async () => {
    const recipe = WITH_QUANT('    calibration: { data: eval.jsonl, samples: 4 }\n');
    const p1 = await project(recipe);
    const p2 = await project(recipe);
    const stats = new StatCache();
    const k1 = (await computeKey(p1.recipe.builds[0], stats)).key;
    expect((await computeKey(p2.recipe.builds[0], stats)).key).toBe(k1);
    writeFileSync(join(p2.dir, 'eval.jsonl'), readFileSync(join(p2.dir, 'eval.jsonl'), 'utf8').split('\n').slice(1).join('\n'));
    expect((await computeKey(p2.recipe.builds[0], stats)).key).not.toBe(k1);
  });
});

describe('steps', () => {
  it('runs the step, and a cache hit serves its report without running it', async () => {
    const p = await project(WITH_QUANT());
    const spy = spyStep();
    overrideStep('quantize', spy.factory as never);
    const first = await compressBuild(p.recipe.builds[0], { cacheDir: p.cacheDir, recipeFile: p.recipe.file });
    expect(spy.calls).toBe(1);
    // simplify runs first by default; the CNN has nothing for it to change.
    expect(first.manifest.steps.map((s) => s.step)).toEqual(['simplify', 'quantize']);
    expect(first.manifest.steps[0].totals).toMatchObject({ nodes: { before: 10, after: 10 } });
    expect(first.manifest.steps[1].layers[0]).toMatchObject({ name: 'fc', op: 'Gemm' });
    expect(first.manifest.steps[1].params).toMatchObject({ dtype: 'int8' });
    expectValidManifest(first.manifest);
    const second = await compressBuild(p.recipe.builds[0], { cacheDir: p.cacheDir, recipeFile: p.recipe.file });
    expect(spy.calls).toBe(1);
    expect(second.cached).toBe(true);
    expect(second.manifest.steps).toEqual(first.manifest.steps);
  });

  it('shares one computation between concurrent calls with the same key', async () => {
    const p = await project(WITH_QUANT());
    const spy = spyStep();
    overrideStep('quantize', spy.factory as never);
    const before = compressionCount();
    const [a, b] = await Promise.all([compressBuild(p.recipe.builds[0], { cacheDir: p.cacheDir }), compressBuild(p.recipe.builds[0], { cacheDir: p.cacheDir })]);
    expect(spy.calls).toBe(1);
    expect(compressionCount()).toBe(before + 1);
    expect(a.file).toBe(b.file); // one output file, read on demand by each
    expect(Buffer.from(a.bytes).equals(Buffer.from(b.bytes))).toBe(true);
  });

  it('fails with a compress error when the output does not load in onnxruntime', async () => {
    const p = await project(WITH_QUANT());
    overrideStep('quantize', spyStep((m) => (m.graph!.node[0].input[0] = 'no_such_tensor')).factory as never);
    const e = await compressBuild(p.recipe.builds[0], { cacheDir: false }).catch((x) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect(e.kind).toBe('compress');
    expect(e.exitCode).toBe(1);
    expect(e.message).toMatch(/\/fmnist\.onnx: fmnist: the compressed model does not load in onnxruntime: Invalid model\. Node input 'no_such_tensor'/);
  });

  it('quantize int8: smaller, loads and runs in onnxruntime, keeps accuracy, manifest lists the layers', async () => {
    const p = await project(WITH_QUANT('    evaluate: { data: eval.jsonl, runs: 1 }\n    budget: { minAgreement: 0.9, maxAccuracyDrop: 0.07 }\n'));
    const [r] = await compressRecipe(p.recipe, { cacheDir: p.cacheDir });
    expect(r.bytes.byteLength).toBeLessThan(statSync(FMNIST).size / 2);
    const [sample] = loadFashionMnist(IMAGES, LABELS, 1);
    const out = await ortRun(r.bytes, sample.feeds.image);
    expect(out.length).toBe(10);
    const quantize = r.manifest.steps.find((s) => s.step === 'quantize')!;
    expect(quantize.layers.length).toBeGreaterThan(0);
    expect(r.manifest.sizes.after.bytes).toBe(r.bytes.byteLength);
    expect(r.manifest.sizes.after.bytesByDtype.int8 ?? r.manifest.sizes.after.bytesByDtype.uint8).toBeGreaterThan(0);
    const acc = r.manifest.accuracy!;
    expect(acc).toMatchObject({ samples: 16, labeled: 16 });
    expect(acc.metrics.agreement).toBeGreaterThanOrEqual(0.9);
    expect(acc.metrics.cosine).toBeGreaterThan(0.99);
    expect(r.manifest.warnings.filter((w) => w.startsWith('budget'))).toEqual([]);
    const { file, manifestFile } = writeResult(r, join(p.dir, 'out'));
    const m = JSON.parse(readFileSync(manifestFile, 'utf8'));
    expectValidManifest(m);
    expect(m.output.sha256).toBe(sha(readFileSync(file)));
    // The HTML report shows what the manifest says: fidelity per output, latency, budget, each layer's precision.
    const html = reportHtml([{ result: r, fileName: 'fmnist.onnx' }]);
    expect(html).toContain(`<td class="n">${acc.metrics.cosine.toPrecision(6)}</td>`);
    expect(html).toMatch(/<th>latency \(1 timed run each after 2 warm-up runs, one sample\)<\/th>/);
    expect(html).toMatch(/<tr><td>onnxruntime-node [\d.]+ \(cpu\)/);
    expect(html).toContain('Budget: <strong class="">met (maxAccuracyDrop 0.07, minAgreement 0.9)</strong>');
    expect(html).toContain(`${quantize.layers.length} layers: precision and error`);
    expect(html).toMatch(/float32 → u?int8/);
    expect(html).toContain('<p>Simplified: 10 → 10 nodes, ');
    // Deterministic: the same recipe elsewhere gives the same bytes.
    const p2 = await project(WITH_QUANT());
    const [r2] = await compressRecipe(p2.recipe, { cacheDir: false });
    expect(sha(r2.bytes)).toBe(sha(r.bytes));
  });
});

describe('evaluation and budgets', () => {
  it('fails on maxBytes with the metric and the recipe position, or warns when asked', async () => {
    const p = await project(`defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n    budget:\n      maxBytes: 1000\n`);
    const e = await compressRecipe(p.recipe, { cacheDir: p.cacheDir }).catch((x) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect(e.kind).toBe('budget');
    expect(e.message).toMatch(/compress\.yaml:6:5: fmnist: over budget: size 3299246 > maxBytes 1000/);
    // The compressed result was cached before the check: a warn run is a hit with a warning.
    const [r] = await compressRecipe(p.recipe, { cacheDir: p.cacheDir, budget: 'warn' });
    expect(r.cached).toBe(true);
    expect(r.manifest.warnings).toContain('budget: size 3299246 > maxBytes 1000');
    expectValidManifest(r.manifest);
  });

  it('evaluates against labels and fails an accuracy budget listing each metric', async () => {
    const p = await project(
      WITH_QUANT('    evaluate: { data: eval.jsonl, runs: 2 }\n    budget: { minAgreement: 0.9, minCosine: 0.99, maxBytes: 10MB }\n'),
    );
    overrideStep('quantize', spyStep(negateClassifier).factory as never);
    const e = await compressRecipe(p.recipe, { cacheDir: p.cacheDir }).catch((x) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect(e.kind).toBe('budget');
    expect(e.message).toMatch(/agreement [\d.]+ < minAgreement 0\.9/);
    expect(e.message).toMatch(/cosine -?[\d.]+ < minCosine 0\.99/);
    expect(e.message).not.toMatch(/maxBytes/);
    const [r] = await compressRecipe(p.recipe, { cacheDir: p.cacheDir, budget: 'warn' });
    expect(r.cached).toBe(true);
    const acc = r.manifest.accuracy!;
    expect(acc.samples).toBe(16);
    expect(acc.labeled).toBe(16);
    expect(acc.original.accuracy).toBeGreaterThan(0.7);
    expect(acc.compressed.accuracy!).toBeLessThan(acc.original.accuracy!);
    expect(r.manifest.latency?.original.median).toBeGreaterThan(0);
    expect(r.manifest.warnings.filter((w) => w.startsWith('budget: '))).toHaveLength(2);
    expectValidManifest(r.manifest);
  });

  it('passes an accuracy budget the output meets', async () => {
    const p = await project(WITH_QUANT('    evaluate: { data: eval.jsonl, runs: 1 }\n    budget: { minAgreement: 0.99, maxAccuracyDrop: 0 }\n'));
    overrideStep('quantize', spyStep().factory as never);
    const [r] = await compressRecipe(p.recipe, { cacheDir: false });
    expect(r.manifest.accuracy!.metrics.agreement).toBe(1);
    expect(r.manifest.warnings).toEqual([]);
    expectValidManifest(r.manifest);
  });
});
