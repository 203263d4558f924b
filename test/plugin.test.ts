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

// `spam` is imported (hashed asset); `spam.raw` (no steps: cheap) is emitted always, under its own name.
const RECIPE = `models:
  spam:
    source: models/spam.onnx
    quantize:
      dtype: int8
    variants:
      raw:
        quantize: null
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
    expect(manifest.steps.map((s: { step: string }) => s.step)).toEqual(['quantize']);

    const aggregate = readJson(path.join(dist, 'onnx-compress.json'));
    expect(Object.keys(aggregate.models).sort()).toEqual(['spam', 'spam.raw']);
    expect(aggregate.models.spam.file).toBe(asset);
    expect(aggregate.models['spam.raw'].file).toBe('models/spam.raw.onnx');
    expect(aggregate.models['spam.raw'].manifest.output.bytes).toBe(statSync(MODEL).size);

    const html = readFileSync(path.join(dist, 'onnx-compress-report.html'), 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('spam.raw');
    expect(html).not.toMatch(/<(script|link)\b[^>]*(src|href)=/); // no external assets

    // `&meta` and the virtual module: the manifest is in the bundle, both ids are listed.
    expect(js).toContain('"spam.raw"');
    expect(js).toContain(manifest.output.sha256);
  });

  it('does no compression on a second build with nothing changed', async () => {
    const before = compressionCount();
    logs.length = 0;
    await viteBuild(viteConfig(root));
    expect(compressionCount()).toBe(before);
    expect(logs.filter((l) => /\] spam(\.raw)?: .*\(cached\)$/.test(l))).toHaveLength(2);
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
    expect(parseCompressImport('./m.onnx?compress')).toEqual({ path: './m.onnx', variant: undefined, meta: false });
    expect(parseCompressImport('./m.onnx?compress=q4&meta')).toEqual({ path: './m.onnx', variant: 'q4', meta: true });
    expect(parseCompressImport('./m.onnx?meta&compress')).toEqual({ path: './m.onnx', variant: undefined, meta: true });
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
