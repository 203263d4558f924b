/**
 * How each bundler puts a compressed model in its output and writes its URL into a module. This is the
 * one place that differs per bundler besides the escape hatches in core.ts that call `finish`:
 *
 *   Rollup / Vite build   `this.emitFile` → hashed asset, `import.meta.ROLLUP_FILE_URL_<ref>`;
 *                          sidecars emitted in generateBundle (the hashed names are known there).
 *   webpack / rspack      name hashed here from the bytes, `__webpack_public_path__ + name`;
 *                          every file emitted in processAssets (survives webpack's module cache).
 *   esbuild               the bytes loaded with esbuild's `file` loader (esbuild hashes them and applies
 *                          `publicPath` / `assetNames`); sidecars written in onEnd, names from the metafile.
 *   Vite dev server       a dev URL served by the middleware in dev.ts.
 *
 * `emit: always` builds keep the recipe's output name, un-hashed, under `<modelsDir>/` (see Options).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Build } from '../recipe/index.js';
import type { CompressResult } from '../pipeline.js';
import type { CompressedModels } from './models.js';
import { writeChunksAtomic } from '../onnx/io.js';
import { reportFiles, sidecarFiles, type EmittedModel, type OutputFile } from '../pipeline/report.js';

export interface AssetWriter {
  /** Forgets the previous bundle's files. */
  start(): void;
  /** Source of the module whose default export is the URL of the build's compressed model. */
  urlModule(ctx: unknown, build: Build): Promise<string>;
}

/** The un-hashed path of an `emit: always` build in the output directory. */
export function fixedFileName(build: Build, modelsDir: string): string {
  return modelsDir ? `${modelsDir}/${build.output}` : build.output;
}

/** `assets/<output stem>-<8 hex of sha256>.onnx`, for bundlers that leave naming to the plugin. */
export function hashedFileName(build: Build, bytes: Uint8Array): string {
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 8);
  const ext = path.posix.extname(build.output);
  return `assets/${path.posix.basename(build.output, ext)}-${hash}${ext}`;
}

/** Compressions of the `emit: always` builds, started at build start so they overlap module loading. */
export async function alwaysResults(models: CompressedModels): Promise<CompressResult[]> {
  const builds = (await models.builds()).filter((b) => b.emit === 'always');
  return Promise.all(builds.map((b) => models.compress(b)));
}

// ---------------------------------------------------------------------------------------------------------------

/** Models emitted by Vite worker bundles, by output folder, until the page's bundle reports them. */
const workerModels = new Map<string, EmittedModel[]>();

interface RollupEmitter {
  emitFile(file: { type: 'asset'; name?: string; fileName?: string; source: Uint8Array | string }): string;
  getFileName(ref: string): string;
}

export class RollupAssets implements AssetWriter {
  /** Build id → emitted file reference, for this bundle. */
  private refs = new Map<string, { ref: string; result: CompressResult }>();
  constructor(private readonly models: CompressedModels) {}

  start(): void {
    this.refs.clear();
  }

  async urlModule(ctx: unknown, build: Build): Promise<string> {
    const ref = this.emit(ctx as RollupEmitter, await this.models.compress(build));
    return `export default import.meta.ROLLUP_FILE_URL_${ref};\n`;
  }

  /**
   * generateBundle: the `emit: always` models, then the manifests and reports. A Vite worker bundle
   * (built before the page's bundle, into the same folder) writes its models' manifests and leaves its
   * models to the page bundle's aggregate JSON and report, so there is one of each per build.
   */
  async finish(ctx: RollupEmitter, vite?: { worker: boolean; outDir: string }): Promise<void> {
    if (!vite?.worker) for (const result of await alwaysResults(this.models)) this.emit(ctx, result);
    const emitted = [...this.refs.values()].map(({ ref, result }) => ({ result, fileName: ctx.getFileName(ref) }));
    const emitFile = (fileName: string, source: string) => void ctx.emitFile({ type: 'asset', fileName, source });
    if (vite?.worker) {
      await writeReports(this.models, sidecarFiles(emitted), emitFile);
      workerModels.set(vite.outDir, [...(workerModels.get(vite.outDir) ?? []), ...emitted]);
      return;
    }
    const fromWorkers = vite ? (workerModels.get(vite.outDir) ?? []) : [];
    if (vite) workerModels.delete(vite.outDir);
    const own = new Set(emitted.map((e) => e.fileName));
    const all = [...emitted, ...fromWorkers.filter((e) => !own.has(e.fileName))];
    await writeReports(this.models, reportFiles(all, own), emitFile);
  }

  private emit(ctx: RollupEmitter, result: CompressResult): string {
    const { build, bytes } = result;
    let entry = this.refs.get(build.id);
    if (!entry) {
      const name = build.emit === 'always' ? { fileName: fixedFileName(build, this.models.options.modelsDir) } : { name: path.posix.basename(build.output) };
      entry = { ref: ctx.emitFile({ type: 'asset', ...name, source: bytes }), result };
      this.refs.set(build.id, entry);
    }
    return entry.ref;
  }
}

// ---------------------------------------------------------------------------------------------------------------

export class WebpackAssets implements AssetWriter {
  /** Build id → file, kept across compilations: webpack may serve a module from its cache without loading it again. */
  private files = new Map<string, EmittedModel>();
  constructor(private readonly models: CompressedModels) {}

  start(): void {}

  async urlModule(_ctx: unknown, build: Build): Promise<string> {
    const file = this.record(await this.models.compress(build));
    return `export default __webpack_public_path__ + ${JSON.stringify(file.fileName)};\n`;
  }

  /** processAssets: every model this compiler has referenced, the `emit: always` ones, and the reports. */
  async finish(emitAsset: (fileName: string, source: Uint8Array | string) => void): Promise<void> {
    for (const result of await alwaysResults(this.models)) this.record(result);
    const emitted = [...this.files.values()];
    for (const { result, fileName } of emitted) emitAsset(fileName, result.bytes);
    await writeReports(this.models, reportFiles(emitted), emitAsset);
  }

  private record(result: CompressResult): EmittedModel {
    const { build, bytes } = result;
    const fileName = build.emit === 'always' ? fixedFileName(build, this.models.options.modelsDir) : hashedFileName(build, bytes);
    const file = { result, fileName };
    this.files.set(build.id, file);
    return file;
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** esbuild: the URL module re-exports a module that esbuild's `file` loader makes from the bytes. */
export const ESBUILD_FILE_NAMESPACE = 'onnx-compress-file';
export const ESBUILD_FILE_PREFIX = '\0onnx-compress-file:';

export interface EsbuildMetafile {
  outputs: Record<string, { inputs: Record<string, unknown> }>;
}

export class EsbuildAssets implements AssetWriter {
  constructor(private readonly models: CompressedModels) {}

  start(): void {}

  async urlModule(_ctx: unknown, build: Build): Promise<string> {
    await this.models.compress(build); // fail here, in the importing module, rather than in the file loader
    return `export { default } from ${JSON.stringify(ESBUILD_FILE_PREFIX + build.id)};\n`;
  }

  /** The path esbuild names the asset after (its basename) and lists in the metafile as `<namespace>:<path>`. */
  static filePath(build: Build): string {
    return `/${build.id}/${path.posix.basename(build.output)}`;
  }

  async fileContents(buildId: string): Promise<Uint8Array> {
    return (await this.models.compress(await this.models.byId(buildId))).bytes;
  }

  /** onEnd: `emit: always` models under their fixed names, then manifests and reports (needs `outdir` and the metafile). */
  async finish(workingDir: string, outdir: string, metafile: EsbuildMetafile | undefined): Promise<void> {
    outdir = path.resolve(workingDir, outdir);
    const emitted: EmittedModel[] = [];
    const results = await this.models.bundleResults();
    for (const [out, { inputs }] of Object.entries(metafile?.outputs ?? {})) {
      // The asset is the output made of that one input (JS chunks that import it list it too).
      const only = Object.keys(inputs).length === 1 ? Object.keys(inputs)[0] : undefined;
      const result = results.find((r) => only === `${ESBUILD_FILE_NAMESPACE}:${EsbuildAssets.filePath(r.build)}`);
      if (result) emitted.push({ result, fileName: path.relative(outdir, path.resolve(workingDir, out)).replaceAll('\\', '/') });
    }
    for (const result of await alwaysResults(this.models)) {
      const fileName = fixedFileName(result.build, this.models.options.modelsDir);
      await writeOut(outdir, fileName, result.bytes);
      if (!emitted.some((e) => e.result.build.id === result.build.id)) emitted.push({ result, fileName });
    }
    await writeReports(this.models, reportFiles(emitted), (fileName, source) => writeOut(outdir, fileName, source));
  }
}

/** Manifests and reports: into the bundle by `emit`, or into the `reportDir` option's folder (atomically). */
async function writeReports(models: CompressedModels, files: OutputFile[], emit: (fileName: string, source: string) => void | Promise<void>): Promise<void> {
  const dir = models.options.reportDir;
  for (const f of files) {
    if (!dir) await emit(f.fileName, f.source);
    else {
      const file = path.join(dir, f.fileName);
      await mkdir(path.dirname(file), { recursive: true });
      writeChunksAtomic(file, { chunks: [Buffer.from(f.source)], byteLength: Buffer.byteLength(f.source) });
    }
  }
}

async function writeOut(dir: string, fileName: string, data: Uint8Array | string): Promise<void> {
  const file = path.join(dir, fileName);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, data);
}

// ---------------------------------------------------------------------------------------------------------------

/** Vite dev server: `<base>@onnx-compress/<build id>.onnx`, served (compressed on first request) by dev.ts. */
export const DEV_PREFIX = '@onnx-compress/';

export class DevAssets implements AssetWriter {
  constructor(private readonly base: string) {}

  start(): void {}

  async urlModule(_ctx: unknown, build: Build): Promise<string> {
    return `export default ${JSON.stringify(devUrl(this.base, build))};\n`;
  }
}

export function devUrl(base: string, build: Build): string {
  return `${base.endsWith('/') ? base : base + '/'}${DEV_PREFIX}${encodeURIComponent(build.id)}.onnx`;
}
