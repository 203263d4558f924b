/**
 * The bundler plugin on small projects in temp dirs: Vite and Rollup builds (assets, manifests,
 * aggregate JSON, report, the import resolving to the emitted file, cache hits, recipe errors), and
 * webpack / esbuild smoke builds. All builds share one cache: only the first compresses.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as esbuild from 'esbuild';
import { rollup } from 'rollup';
import { build as viteBuild, createLogger, type InlineConfig, type Logger } from 'vite';
import webpack from 'webpack';
import { compressionCount } from '../src/pipeline.js';
import onnxCompressEsbuild from '../src/plugin/esbuild.js';
import { parseCompressImport } from '../src/plugin/ids.js';
import { importerFilter, type Options } from '../src/plugin/options.js';
import onnxCompressRollup from '../src/plugin/rollup.js';
import onnxCompressVite from '../src/plugin/vite.js';
import onnxCompressWebpack from '../src/plugin/webpack.js';

const MODEL = path.resolve('test/fixtures/spam-tinybert/model.onnx');

// `spam` is imported (hashed asset); `spam.raw` (no steps, simplify off: the source as is) is emitted always, under its own name.
const RECIPE = `models:
  spam:
    source: models/spam.onnx
    quantize:
      dtype: int8
    variants:
      raw:
        quantize: null
        simplify: false
        emit: always
`;

const MAIN = `import url from '../models/spam.onnx?compress';
import meta from '../models/spam.onnx?compress&meta';
import all from 'virtual:onnx-compress';
export const result = { url, meta, ids: Object.keys(all) };
console.log(result);
`;

let tmp: string;
let cacheDir: string;
let logs: string[];

function project(name: string, recipe = RECIPE, main = MAIN): string {
  const root = path.join(tmp, name);
  mkdirSync(path.join(root, 'models'), { recursive: true });
  mkdirSync(path.join(root, 'src'), { recursive: true });
  copyFileSync(MODEL, path.join(root, 'models/spam.onnx'));
  writeFileSync(path.join(root, 'compress.yaml'), recipe);
  writeFileSync(path.join(root, 'src/main.js'), main);
  writeFileSync(path.join(root, 'index.html'), '<!doctype html><script type="module" src="/src/main.js"></script>\n');
  return root;
}

function pluginOptions(): Options {
  return { cacheDir, device: 'cpu', logLevel: 'info' };
}

function viteConfig(root: string, extra: Options = {}): InlineConfig {
  return {
    root,
    configFile: false,
    logLevel: 'info',
    customLogger: capturingLogger(),
    plugins: [onnxCompressVite({ ...pluginOptions(), ...extra })],
    build: { outDir: path.join(root, 'dist'), emptyOutDir: true },
  };
}

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => path.relative(dir, path.join(d.parentPath, d.name)).replaceAll('\\', '/'))
    .sort();
}

function readJson(file: string): any {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Vite's logger, silent, keeping the plugin's lines in `logs`. */
function capturingLogger(): Logger {
  const logger = createLogger('info');
  const keep = (msg: string) => void (msg.includes('[onnx-compress]') && logs.push(msg));
  return { ...logger, info: keep, warn: keep, warnOnce: keep, error: keep };
}

beforeAll(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'onnx-compress-plugin-'));
  cacheDir = path.join(tmp, 'cache');
  logs = [];
});

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('vite', () => {
  let root: string;
  let dist: string;

  it('emits the compressed model, its manifest, the aggregate JSON and the report', async () => {
    root = project('vite');
    dist = path.join(root, 'dist');
    await viteBuild(viteConfig(root));
    // A cold build: one line per model, nothing else.
    expect(logs.map((l) => l.replace(/^.*\[onnx-compress\] /, '').split(':')[0]).sort()).toEqual(['spam', 'spam.raw']);
    const out = files(dist);
    const asset = out.find((f) => /^assets\/spam-[\w-]+\.onnx$/.test(f));
    expect(asset, out.join('\n')).toBeDefined();
    expect(out).toContain(`${asset}.manifest.json`);
    expect(out).toContain('models/spam.raw.onnx'); // emit: always, un-hashed
    expect(out).toContain('models/spam.raw.onnx.manifest.json');
    expect(out).toContain('onnx-compress.json');
    expect(out).toContain('onnx-compress-report.html');

    // The bundle's URL is the emitted file.
    const js = out.filter((f) => f.endsWith('.js')).map((f) => readFileSync(path.join(dist, f), 'utf8')).join('\n');
    const urls = [...js.matchAll(/assets\/spam-[\w-]+\.onnx/g)].map((m) => m[0]);
    expect(new Set(urls)).toEqual(new Set([asset]));

    const manifest = readJson(path.join(dist, `${asset}.manifest.json`));
    const bytes = statSync(path.join(dist, asset!)).size;
    expect(manifest.id).toBe('spam');
    expect(manifest.output.file).toBe(asset);
    expect(manifest.output.bytes).toBe(bytes);
    expect(manifest.sizes.after.bytes).toBeLessThan(manifest.sizes.before.bytes / 2); // int8
    expect(manifest.steps.map((s: { step: string }) => s.step)).toEqual(['simplify', 'quantize']);

    const aggregate = readJson(path.join(dist, 'onnx-compress.json'));
    expect(Object.keys(aggregate.models).sort()).toEqual(['spam', 'spam.raw']);
    expect(aggregate.models.spam.file).toBe(asset);
    expect(aggregate.models['spam.raw'].file).toBe('models/spam.raw.onnx');
    expect(aggregate.models['spam.raw'].manifest.output.bytes).toBe(statSync(MODEL).size);

    const html = readFileSync(path.join(dist, 'onnx-compress-report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('spam.raw');
    expect(html).not.toMatch(/<(script|link)\b[^>]*(src|href)=/); // no external assets

    // `&meta` and the virtual module: a small summary per build (not the manifest), both ids listed.
    expect(js).toContain('"spam.raw"');
    expect(js).not.toContain(manifest.output.sha256);
    expect(js).toMatch(new RegExp(`"?bytes"?:${manifest.sizes.after.bytes}`));
    expect(js).toMatch(/precision"?:["'`]int8/);
  });

  it('does no compression on a second build with nothing changed', async () => {
    const before = compressionCount();
    logs.length = 0;
    await viteBuild(viteConfig(root));
    expect(compressionCount()).toBe(before);
    expect(logs).toEqual([]); // a warm build prints nothing beyond Vite's own lines
    const aggregate = readJson(path.join(dist, 'onnx-compress.json'));
    expect(Object.values(aggregate.models).map((m: any) => m.cached)).toEqual([true, true]);
  });

  it('fails on a recipe error with file:line:column', async () => {
    const bad = project('vite-bad', RECIPE.replace('    quantize:\n      dtype: int8', '    quantise:\n      dtype: int8'));
    const err = await viteBuild(viteConfig(bad)).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/compress\.yaml:4:5: models\.spam\.quantise: unknown key.*"quantize"/);
  });

  it('names the file and the recipe when no build matches an import', async () => {
    const root2 = project('vite-novariant', RECIPE, `import url from '../models/spam.onnx?compress=q4';\nconsole.log(url);\n`);
    const err = await viteBuild(viteConfig(root2)).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toContain('models/spam.onnx: no variant "q4" in compress.yaml');
  });

  it('keeps &meta under 1 kB per model; &manifest imports the whole manifest', async () => {
    const url = `import url from '../models/spam.onnx?compress';\nconsole.log(url);\n`;
    const meta = `import meta from '../models/spam.onnx?compress&meta';\nconsole.log(meta);\n`;
    const full = `import full from '../models/spam.onnx?compress&manifest';\nconsole.log(full);\n`;
    const sizes: Record<string, number> = {};
    for (const [name, src] of [['url', url], ['meta', meta], ['manifest', full]] as const) {
      const r = project(`vite-${name}`, RECIPE, src);
      await viteBuild(viteConfig(r));
      const js = files(path.join(r, 'dist')).filter((f) => f.endsWith('.js'));
      sizes[name] = js.reduce((n, f) => n + statSync(path.join(r, 'dist', f)).size, 0);
      const text = js.map((f) => readFileSync(path.join(r, 'dist', f), 'utf8')).join('\n');
      if (name === 'manifest') expect(text).toMatch(/"?steps"?:\[/);
    }
    // What the summary adds to the client JS, over the URL alone: well under 1 kB; the manifest is far larger.
    expect(sizes.meta - sizes.url).toBeLessThan(1024);
    expect(sizes.manifest - sizes.url).toBeGreaterThan(3 * (sizes.meta - sizes.url));
  });

  it('rejects unknown import parameters with a suggestion', async () => {
    const bad = project('vite-param', RECIPE, `import m from '../models/spam.onnx?compress&meat';\nconsole.log(m);\n`);
    const err = await viteBuild(viteConfig(bad)).then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/unknown import parameter "meat" \(did you mean "meta"\?\)/);
    const dtype = project('vite-param2', RECIPE, `import m from '../models/spam.onnx?compress&dtype=int8';\nconsole.log(m);\n`);
    const err2 = await viteBuild(viteConfig(dtype)).then(() => undefined, (e: Error) => e);
    expect(err2?.message).toMatch(/unknown import parameter "dtype" \(precision is set in the recipe/);
  });

  it('compresses ?compress imports inside a Web Worker; one aggregate and report for the build', async () => {
    const worker = `import url from '../models/spam.onnx?compress';\nimport q from '../models/spam.onnx?compress=raw&meta';\nself.postMessage([url, q.bytes]);\n`;
    const main = `import url from '../models/spam.onnx?compress';\nconst w = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });\nw.onmessage = (e) => console.log(url, e.data);\n`;
    const r = project('vite-worker', RECIPE, main);
    writeFileSync(path.join(r, 'src/worker.js'), worker);
    await viteBuild(viteConfig(r));
    const d = path.join(r, 'dist');
    const out = files(d);
    const workerJs = out.filter((f) => /worker.*\.js$/.test(f));
    expect(workerJs, out.join('\n')).toHaveLength(1);
    const asset = out.find((f) => /^assets\/spam-[\w-]+\.onnx$/.test(f))!;
    expect(readFileSync(path.join(d, workerJs[0]), 'utf8')).toContain(path.posix.basename(asset));
    expect(out.filter((f) => f.endsWith('onnx-compress.json'))).toEqual(['onnx-compress.json']);
    expect(out.filter((f) => f.endsWith('onnx-compress-report.html'))).toEqual(['onnx-compress-report.html']);
    const aggregate = readJson(path.join(d, 'onnx-compress.json'));
    expect(Object.keys(aggregate.models).sort()).toEqual(['spam', 'spam.raw']);
    expect(out).toContain(`${asset}.manifest.json`);
  });
});

describe('rollup', () => {
  it('emits the model as an asset and resolves the import to it', async () => {
    const root = project('rollup');
    const bundle = await rollup({ input: path.join(root, 'src/main.js'), plugins: [onnxCompressRollup({ ...pluginOptions(), recipe: path.join(root, 'compress.yaml') })] });
    const dist = path.join(root, 'dist');
    await bundle.write({ dir: dist, format: 'es' });
    await bundle.close();
    const out = files(dist);
    const asset = out.find((f) => /^assets\/spam-[\w-]+\.onnx$/.test(f));
    expect(asset, out.join('\n')).toBeDefined();
    expect(out).toEqual(expect.arrayContaining([`${asset}.manifest.json`, 'models/spam.raw.onnx', 'onnx-compress.json', 'onnx-compress-report.html']));
    const js = readFileSync(path.join(dist, 'main.js'), 'utf8');
    expect(js).toContain(`new URL('${asset}', import.meta.url).href`);
    // The same bytes as Vite's build (same cache entry).
    expect(readJson(path.join(dist, 'onnx-compress.json')).models.spam.cached).toBe(true);
  });
});

describe('reportDir', () => {
  it('writes manifests and reports outside the bundle output, which keeps only the models', async () => {
    const root = project('rollup-reports');
    const plugin = onnxCompressRollup({ ...pluginOptions(), recipe: path.join(root, 'compress.yaml'), reportDir: path.join(root, 'reports') });
    const bundle = await rollup({ input: path.join(root, 'src/main.js'), plugins: [plugin] });
    await bundle.write({ dir: path.join(root, 'dist'), format: 'es' });
    await bundle.close();
    const out = files(path.join(root, 'dist'));
    expect(out.filter((f) => !f.endsWith('.js')).every((f) => f.endsWith('.onnx')), out.join('\n')).toBe(true);
    const asset = out.find((f) => /^assets\/spam-[\w-]+\.onnx$/.test(f));
    expect(files(path.join(root, 'reports'))).toEqual(
      [`${asset}.manifest.json`, 'models/spam.raw.onnx.manifest.json', 'onnx-compress-report.html', 'onnx-compress.json'].sort(),
    );
  });
});

describe('webpack and esbuild (smoke)', () => {
  it('webpack emits the model and resolves the import', async () => {
    const root = project('webpack');
    const dist = path.join(root, 'dist');
    const compiler = webpack({
      mode: 'production',
      context: root,
      entry: './src/main.js',
      target: 'web',
      output: { path: dist, publicPath: '/', filename: 'main.js' },
      performance: { hints: false },
      plugins: [onnxCompressWebpack(pluginOptions())],
    });
    const stats = await new Promise<webpack.Stats>((resolve, reject) => compiler.run((err, s) => (err ? reject(err) : resolve(s!))));
    await new Promise((r) => compiler.close(r));
    expect(stats.hasErrors(), stats.toString({ all: false, errors: true })).toBe(false);
    const out = files(dist);
    const asset = out.find((f) => /^assets\/spam-[0-9a-f]{8}\.onnx$/.test(f));
    expect(asset, out.join('\n')).toBeDefined();
    expect(out).toEqual(expect.arrayContaining([`${asset}.manifest.json`, 'models/spam.raw.onnx', 'onnx-compress.json', 'onnx-compress-report.html']));
    expect(readFileSync(path.join(dist, 'main.js'), 'utf8')).toContain(`"${asset}"`); // after __webpack_public_path__
  });

  it('esbuild with outfile writes the manifests beside the bundle', async () => {
    const root = project('esbuild-outfile');
    const dist = path.join(root, 'out');
    const result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: ['src/main.js'],
      bundle: true,
      format: 'esm',
      outfile: path.join(dist, 'app.js'),
      logLevel: 'silent',
      plugins: [onnxCompressEsbuild(pluginOptions())],
    });
    expect(result.errors).toEqual([]);
    const out = files(dist);
    const asset = out.find((f) => /^spam-\w+\.onnx$/.test(f));
    expect(asset, out.join('\n')).toBeDefined();
    expect(out).toEqual(expect.arrayContaining([`${asset}.manifest.json`, 'onnx-compress.json', 'onnx-compress-report.html']));
  });

  it('esbuild emits the model and resolves the import', async () => {
    const root = project('esbuild');
    const dist = path.join(root, 'dist');
    const result = await esbuild.build({
      absWorkingDir: root,
      entryPoints: ['src/main.js'],
      bundle: true,
      format: 'esm',
      outdir: dist,
      logLevel: 'silent',
      plugins: [onnxCompressEsbuild(pluginOptions())],
    });
    expect(result.errors).toEqual([]);
    const out = files(dist);
    const asset = out.find((f) => /^spam-\w+\.onnx$/.test(f));
    expect(asset, out.join('\n')).toBeDefined();
    expect(out).toEqual(expect.arrayContaining([`${asset}.manifest.json`, 'models/spam.raw.onnx', 'onnx-compress.json', 'onnx-compress-report.html']));
    expect(readFileSync(path.join(dist, 'main.js'), 'utf8')).toContain(`"./${asset}"`);
  });
});

describe('import ids and options', () => {
  it('parses ?compress imports', () => {
    expect(parseCompressImport('./m.onnx?compress')).toEqual({ path: './m.onnx', variant: undefined, kind: 'url' });
    expect(parseCompressImport('./m.onnx?compress=q4&meta')).toEqual({ path: './m.onnx', variant: 'q4', kind: 'meta' });
    expect(parseCompressImport('./m.onnx?meta&compress')).toEqual({ path: './m.onnx', variant: undefined, kind: 'meta' });
    expect(parseCompressImport('./m.onnx?compress&manifest')).toEqual({ path: './m.onnx', variant: undefined, kind: 'manifest' });
    expect(parseCompressImport('./m.onnx?compress&import&t=123')).toEqual({ path: './m.onnx', variant: undefined, kind: 'url' });
    expect(() => parseCompressImport('./m.onnx?compress&mata')).toThrow(/unknown import parameter "mata" \(did you mean "meta"\?\)/);
    expect(parseCompressImport('./m.onnx?url')).toBeUndefined();
    expect(parseCompressImport('./m.onnx')).toBeUndefined();
  });

  it('filters importers with include / exclude globs and RegExps', () => {
    const only = importerFilter('/app', 'src/**/*.ts', [/legacy/]);
    expect(only('/app/src/a/b.ts')).toBe(true);
    expect(only('/app/src/b.ts?v=1')).toBe(true);
    expect(only('/app/src/legacy/b.ts')).toBe(false);
    expect(only('/app/lib/b.ts')).toBe(false);
    expect(only(undefined)).toBe(true); // entries and virtual modules
    expect(importerFilter('/app')('/anything.js')).toBe(true);
  });

  it('skips imports from excluded importers', async () => {
    const root = project('vite-excluded');
    const err = await viteBuild(viteConfig(root, { exclude: 'src/**' })).then(
      () => undefined,
      (e: Error) => e,
    );
    expect(err?.message).toMatch(/spam\.onnx\?compress/); // left to Vite, which cannot load it
  });
});

describe('pickVariant (client helper)', () => {
  const summary = (id: string, precision: string, target = 'wasm') => {
    const [name, variant] = id.split('.');
    return { id, name, ...(variant && { variant }), precision, target, bytes: 1, sourceBytes: 1, brotli: 1, budget: 'none', url: `/${id}.onnx` };
  };
  const models = Object.fromEntries(
    [summary('m', 'int8'), summary('m.q4', 'int4', 'webgpu'), summary('m.q4f16', 'q4f16', 'webgpu'), summary('m.fp16', 'float16'), summary('other', 'float32')].map((s) => [s.id, s]),
  );
  const device = (webgpu: boolean, shaderF16 = false) => ({ webgpu, shaderF16, wasmSimd: true, wasmThreads: false });

  it('picks q4f16 on WebGPU with shader-f16, 4-bit on WebGPU, 8-bit on wasm', async () => {
    const { createPicker } = await import('../client/pick.js');
    const pick = createPicker(models as Record<string, any>);
    expect(await pick('m', { device: device(true, true) })).toMatchObject({ id: 'm.q4f16', executionProvider: 'webgpu' });
    expect(await pick('m', { device: device(true) })).toMatchObject({ id: 'm.q4', executionProvider: 'webgpu' });
    expect(await pick('m', { device: device(false) })).toMatchObject({ id: 'm', executionProvider: 'wasm' });
    expect(await pick('other', { device: device(true, true) })).toMatchObject({ id: 'other', executionProvider: 'webgpu' });
  });

  it('follows an order given by the plugin option or the call, by precision or variant name', async () => {
    const { createPicker } = await import('../client/pick.js');
    const pick = createPicker(models as Record<string, any>, { order: { wasm: ["float16"] } });
    expect(await pick('m', { device: device(false) })).toMatchObject({ id: 'm.fp16', executionProvider: 'wasm' });
    expect(await pick('m', { device: device(true), order: { webgpu: ['fp16'] } })).toMatchObject({ id: 'm.fp16', executionProvider: 'webgpu' });
    // WebGPU-form builds are never handed to wasm; with nothing in the order, the main build.
    expect(await pick('m', { device: device(false), order: { wasm: ['int4'] } })).toMatchObject({ id: 'm', executionProvider: 'wasm' });
    await expect(pick('nope', { device: device(false) })).rejects.toThrow(/no model "nope" was built \(models: m, other\)/);
  });

  it("takes the recipe's `pick` for a model over the plugin's order, and the call's over both", async () => {
    const { createPicker } = await import('../client/pick.js');
    const pick = createPicker(models as Record<string, any>, { order: { wasm: ['float16'] }, models: { m: { wasm: ['main'] } } });
    expect(await pick('m', { device: device(false) })).toMatchObject({ id: 'm', executionProvider: 'wasm' });
    expect(await pick('m', { device: device(false), order: { wasm: ['fp16'] } })).toMatchObject({ id: 'm.fp16' });
    // Tiers the recipe does not name keep the default order.
    expect(await pick('m', { device: device(true) })).toMatchObject({ id: 'm.q4', executionProvider: 'webgpu' });
  });

  it('detects no WebGPU in Node and never throws', async () => {
    const { detectDevice } = await import('../client/pick.js');
    const d = await detectDevice();
    expect(d.webgpu).toBe(false);
    expect(typeof d.wasmSimd).toBe('boolean');
  });
});
