/**
 * The plugin's options, their defaults, and the two small services built from them: a leveled logger
 * and the importer filter (`include` / `exclude`).
 */
import path from 'node:path';
import type { Device } from '../device.js';
import { CompressError } from '../errors.js';

export type LogLevel = 'silent' | 'error' | 'warn' | 'info';
export type FilterPattern = string | RegExp | readonly (string | RegExp)[];

export interface Options {
  /** Recipe file(s), relative to the project root (Vite `root`, else the working directory). Default `compress.yaml`. */
  recipe?: string | string[];
  /** Where compressed models are cached (default: the pipeline's, `node_modules/.cache/onnx-compress`); `false` disables it. */
  cacheDir?: string | false;
  /** Device that verifies and evaluates compressed models (default: the recipe's, else 'auto'). */
  device?: Device;
  /** What a missed accuracy/size budget does; overrides the recipe's `budget.onFail`. */
  budget?: 'error' | 'warn';
  /** Importers whose `?compress` imports this plugin handles (globs relative to the root, or RegExps). Default: all. */
  include?: FilterPattern;
  /** Importers left alone, even when `include` matches them. */
  exclude?: FilterPattern;
  /** Default 'info': one line per model (sizes, accuracy, cache hit). */
  logLevel?: LogLevel;
  /**
   * Folder of the output directory for `emit: always` models, which keep the recipe's `output` name
   * un-hashed (`<modelsDir>/<output>`), so runtimes that compute model paths (transformers.js
   * `localModelPath`) find them. Imported `emit: imported` models are hashed assets. Default 'models'.
   */
  modelsDir?: string;
  /**
   * Preference order of `pickVariant` (from `virtual:onnx-compress`) per device tier: precisions
   * ('q4f16', 'int4', 'int8', 'float16', …) or variant names, best first. Tiers not given keep the default
   * (webgpu-f16: q4f16, float16, int4, …; webgpu: int4, int8, …; wasm: int8, uint8, int4, …).
   */
  variantOrder?: Partial<Record<'webgpu-f16' | 'webgpu' | 'wasm', string[]>>;
  /**
   * Folder (relative to the root) for the manifests, `onnx-compress.json` and the HTML report, written
   * there instead of into the bundle's output, so a deploy of the output ships only the models. Default:
   * in the output, next to the models.
   */
  reportDir?: string;
}

export interface ResolvedOptions {
  root: string;
  recipes: string[];
  cacheDir?: string | false;
  device?: Device;
  budget?: 'error' | 'warn';
  logLevel: LogLevel;
  modelsDir: string;
  variantOrder?: Options['variantOrder'];
  /** Absolute; undefined = emitted into the bundle. */
  reportDir?: string;
  isImporterIncluded: (importer: string | undefined) => boolean;
}

export function resolveOptions(options: Options = {}, root: string = process.cwd()): ResolvedOptions {
  const recipes = [options.recipe ?? 'compress.yaml'].flat().map((r) => path.resolve(root, r));
  return {
    root,
    recipes,
    cacheDir: options.cacheDir,
    device: options.device,
    budget: options.budget,
    logLevel: options.logLevel ?? 'info',
    modelsDir: confinedModelsDir(options.modelsDir ?? 'models'),
    variantOrder: options.variantOrder,
    ...(options.reportDir !== undefined && { reportDir: path.resolve(root, options.reportDir) }),
    isImporterIncluded: importerFilter(root, options.include, options.exclude),
  };
}

/**
 * `modelsDir` names a folder inside the bundler's output directory: `..` segments, absolute and Windows
 * paths, backslashes and control characters are refused (an emitted file must never land outside it).
 */
export function confinedModelsDir(dir: string): string {
  const trimmed = String(dir).replace(/^\/+|\/+$/g, '');
  // eslint-disable-next-line no-control-regex
  const bad = /[\u0000-\u001f\\]/.test(trimmed) || /^[a-zA-Z]:/.test(trimmed) || trimmed.split('/').some((s) => s === '..' || s === '.' || (s === '' && trimmed !== ''));
  if (bad) throw new CompressError('recipe', `the modelsDir option must name a folder inside the output directory (like "models" or "assets/models"), found ${JSON.stringify(dir)}`);
  return trimmed;
}

export type Log = (level: 'info' | 'warn' | 'error', message: string) => void;

const RANK: Record<LogLevel, number> = { silent: 0, error: 1, warn: 2, info: 3 };

/** A logger that drops messages above `level`; `sink` defaults to the console, prefixed with the plugin name. */
export function createLog(level: LogLevel, sink?: Log): Log {
  const out: Log =
    sink ??
    ((lvl, message) => {
      const line = `[onnx-compress] ${message}`;
      if (lvl === 'error') console.error(line);
      else if (lvl === 'warn') console.warn(line);
      else console.log(line);
    });
  return (lvl, message) => {
    if (RANK[lvl] <= RANK[level]) out(lvl, message);
  };
}

/** Whether an importer passes include/exclude. Imports with no importer (entries, virtual modules) always pass. */
export function importerFilter(root: string, include?: FilterPattern, exclude?: FilterPattern): (importer: string | undefined) => boolean {
  const inc = toMatchers(root, include);
  const exc = toMatchers(root, exclude);
  return (importer) => {
    if (!importer || importer.startsWith('\0')) return true;
    const file = importer.split('?')[0].replaceAll('\\', '/');
    if (exc.some((m) => m(file))) return false;
    return inc.length === 0 || inc.some((m) => m(file));
  };
}

function toMatchers(root: string, pattern?: FilterPattern): ((file: string) => boolean)[] {
  if (pattern === undefined) return [];
  const list = (Array.isArray(pattern) ? pattern : [pattern]) as (string | RegExp)[];
  return list.map((p) => {
    if (p instanceof RegExp) return (file: string) => p.test(file);
    const re = globToRegExp(path.posix.isAbsolute(p) ? p : `${root.replaceAll('\\', '/')}/${p}`);
    return (file: string) => re.test(file);
  });
}

/** `**` any folders, `*` within one path segment, `?` one character; everything else literal. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*' && glob[i + 1] === '*') {
      const slash = glob[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
