/**
 * The unplugin factory. Generic hooks (buildStart, resolveId, load) delegate to resolve.ts and the
 * bundler's AssetWriter (assets.ts); what only one bundler has lives in its escape hatch below:
 * Rollup/Vite `generateBundle`, Vite's dev server (dev.ts), webpack/rspack `processAssets`, esbuild's
 * `file` loader and `onEnd`.
 */
import path from 'node:path';
import { createUnplugin, type UnpluginFactory, type WebpackCompiler } from 'unplugin';
import type { PluginBuild } from 'esbuild';
import type { Logger, Plugin as VitePlugin, UserConfig } from 'vite';
import {
  DevAssets,
  ESBUILD_FILE_NAMESPACE,
  ESBUILD_FILE_PREFIX,
  EsbuildAssets,
  RollupAssets,
  WebpackAssets,
  alwaysResults,
  type AssetWriter,
} from './assets.js';
import { RESOLVED_ALL } from './ids.js';
import { modelMiddleware, onInputChange } from './dev.js';
import { bundlerError } from './errors.js';
import { CompressedModels } from './models.js';
import type { Log, Options } from './options.js';
import { loadModule, resolveImport } from './resolve.js';

export type { Options } from './options.js';

export const PLUGIN_NAME = 'unplugin-onnx-compress';
/** `?compress` / `&compress` / `?compress=<variant>` imports, the virtual module, and our own ids. */
const RESOLVE_FILTER = /[?&]compress(?:[=&]|$)|^\0?virtual:onnx-compress$|^\0onnx-compress:/;
const LOAD_FILTER = /^\0(?:onnx-compress:|virtual:onnx-compress$)/;

export const unpluginFactory: UnpluginFactory<Options | undefined, false> = (options, meta) => {
  const models = new CompressedModels(options);
  const rollupAssets = new RollupAssets(models);
  const webpackAssets = new WebpackAssets(models);
  const esbuildAssets = new EsbuildAssets(models);
  const bundlerAssets: Partial<Record<string, AssetWriter>> = { webpack: webpackAssets, rspack: webpackAssets, esbuild: esbuildAssets };
  let assets: AssetWriter = bundlerAssets[meta.framework] ?? rollupAssets;
  let serving = false;
  /** Vite: this instance bundles a worker (its models are reported by the main build); the output folder. */
  let viteBundle: { worker: boolean; outDir: string } | undefined;

  return {
    name: PLUGIN_NAME,
    enforce: 'pre',

    async buildStart() {
      models.startBundle();
      assets.start();
      if (serving) return; // the dev server reports recipe errors where models are imported, in the overlay
      await models.recipes().catch((e) => Promise.reject(bundlerError(e)));
      alwaysResults(models).catch(() => {}); // start now, overlapping module loading; awaited when writing
    },

    resolveId: {
      filter: { id: RESOLVE_FILTER },
      handler(id, importer) {
        return resolveImport(models, id, importer).catch((e) => Promise.reject(bundlerError(e)));
      },
    },

    load: {
      filter: { id: LOAD_FILTER },
      handler(id) {
        return loadModule(models, assets, this, id).catch((e) => Promise.reject(bundlerError(e)));
      },
    },

    rollup: {
      async generateBundle() {
        await rollupAssets.finish(this).catch((e) => Promise.reject(bundlerError(e)));
      },
    },

    vite: {
      config(config) {
        return withWorkerPlugin(config, () => unplugin.vite(options) as VitePlugin);
      },
      configResolved(config) {
        models.configure(config.root, viteLog(config.logger));
        serving = config.command === 'serve';
        if (serving) assets = new DevAssets(config.base);
        viteBundle = { worker: config.isWorker, outDir: path.resolve(config.root, config.build.outDir) };
      },
      configureServer(server) {
        server.middlewares.use(modelMiddleware(models, server));
        models.inputs().then((files) => server.watcher.add(files), () => {});
      },
      async handleHotUpdate({ file, server }) {
        if (await onInputChange(models, server, file)) return [];
      },
      async generateBundle() {
        await rollupAssets.finish(this, viteBundle).catch((e) => Promise.reject(bundlerError(e)));
      },
    },

    webpack(compiler) {
      webpackHooks(compiler, models, webpackAssets);
    },
    rspack(compiler) {
      webpackHooks(compiler as unknown as WebpackCompiler, models, webpackAssets);
    },

    esbuild: {
      loader: 'js',
      config(buildOptions) {
        buildOptions.metafile = true; // onEnd finds the hashed model names in it
      },
      setup(build) {
        esbuildHooks(build, models, esbuildAssets);
      },
    },
  };
};

export const unplugin = /* #__PURE__ */ createUnplugin(unpluginFactory);
export default unplugin;

/**
 * Vite bundles each Web Worker in a build of its own with `worker.plugins`: `?compress` imports in a
 * worker need the plugin there too. Added unless the user already put it there.
 */
function withWorkerPlugin(config: UserConfig, plugin: () => VitePlugin): UserConfig | undefined {
  const userPlugins = config.worker?.plugins;
  const listed = (typeof userPlugins === 'function' ? userPlugins() : []).flat(Infinity as 1) as unknown[];
  if (listed.some((p) => (p as { name?: string } | null)?.name === PLUGIN_NAME)) return undefined;
  return { worker: { plugins: () => [plugin()] } };
}

function viteLog(logger: Logger): Log {
  return (level, message) => logger[level](`[onnx-compress] ${message}`, { timestamp: true });
}

function webpackHooks(compiler: WebpackCompiler, models: CompressedModels, assets: WebpackAssets): void {
  models.configure(compiler.options.context ?? process.cwd());
  const { Compilation, NormalModuleReplacementPlugin, sources } = compiler.webpack;
  // webpack reads `virtual:` as a URI scheme before any resolver plugin sees it.
  new NormalModuleReplacementPlugin(/^virtual:onnx-compress$/, RESOLVED_ALL).apply(compiler);
  compiler.hooks.thisCompilation.tap(PLUGIN_NAME, (compilation) => {
    const stage = Compilation.PROCESS_ASSETS_STAGE_ADDITIONAL;
    compilation.hooks.processAssets.tapPromise({ name: PLUGIN_NAME, stage }, () =>
      assets
        .finish((fileName, source) => {
          const raw = new sources.RawSource(typeof source === 'string' ? source : Buffer.from(source.buffer, source.byteOffset, source.byteLength));
          if (compilation.getAsset(fileName)) compilation.updateAsset(fileName, raw);
          else compilation.emitAsset(fileName, raw);
        })
        .catch((e) => Promise.reject(bundlerError(e))),
    );
  });
}

function esbuildHooks(build: PluginBuild, models: CompressedModels, assets: EsbuildAssets): void {
  const workingDir = build.initialOptions.absWorkingDir ?? process.cwd();
  models.configure(workingDir);
  build.onResolve({ filter: new RegExp(`^${ESBUILD_FILE_PREFIX}`) }, async (args) => {
    const id = args.path.slice(ESBUILD_FILE_PREFIX.length);
    return { path: EsbuildAssets.filePath(await models.byId(id)), namespace: ESBUILD_FILE_NAMESPACE, pluginData: id };
  });
  build.onLoad({ filter: /.*/, namespace: ESBUILD_FILE_NAMESPACE }, async (args) => ({
    contents: await assets.fileContents(args.pluginData as string),
    loader: 'file',
  }));
  build.onEnd(async (result) => {
    const { outdir, outfile, write } = build.initialOptions;
    // With `outfile` (one bundle), assets and manifests go beside it, as esbuild puts the file loader's assets.
    const dir = outdir ?? (outfile ? path.dirname(outfile) : undefined);
    if (!dir || write === false || result.errors.length > 0) return;
    try {
      await assets.finish(workingDir, dir, result.metafile);
    } catch (e) {
      result.errors.push({ id: '', pluginName: PLUGIN_NAME, text: bundlerError(e).message, location: null, notes: [], detail: undefined });
    }
  });
}
