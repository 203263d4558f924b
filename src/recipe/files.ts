/**
 * The recipe values that name files: the source, each step's file keys (from its config in the step
 * registry), calibration.data and evaluate.data. The existence check, the cache key (files hashed by
 * content) and the manifest (paths relative to the recipe) all find them here, so a name glob that
 * happens to start with "/" (a node name like "/encoder/*") is never taken for a file.
 */
import { statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { describeStat } from '../onnx/paths.js';
import type { FileKind } from '../transforms/step-config.js';
import { STEP_REGISTRY } from '../transforms/registry.js';
import { positionOf } from './build.js';
import type { Source } from './source.js';
import { dataExtensions } from './support.js';
import type { Build } from './types.js';

/** Key paths in a build-shaped object (`steps.distill.teacher`, `calibration.data`, …) that name files. */
export const FILE_KEYS: ReadonlyMap<string, FileKind> = new Map<string, FileKind>([
  ...STEP_REGISTRY.flatMap((s) => Object.entries(s.config.files).map(([k, kind]) => [`steps.${s.name}.${k}`, kind] as [string, FileKind])),
  ['calibration.data', 'data'],
  ['evaluate.data', 'data'],
]);

/** Not files: the words a file key may hold instead of a path. */
const isPath = (v: unknown): v is string => typeof v === 'string' && path.isAbsolute(v);

/**
 * A copy of `v` (shaped like a build: `{ steps, calibration, evaluate, … }`) with every file path
 * replaced by `map(path)`; everything else, strings included, is kept as it is.
 */
export function mapFilePaths<T>(v: T, map: (file: string) => string): T {
  const walk = (x: unknown, at: string): unknown => {
    if (FILE_KEYS.has(at)) return isPath(x) ? map(x) : x;
    if (Array.isArray(x) || !x || typeof x !== 'object') return x;
    const out: Record<string, unknown> = {};
    for (const [k, y] of Object.entries(x)) out[k] = walk(y, at ? `${at}.${k}` : k);
    return out;
  };
  return walk(v, '') as T;
}

/** mapFilePaths with an asynchronous map (each distinct path is mapped once). */
export async function mapFilePathsAsync<T>(v: T, map: (file: string) => Promise<string>): Promise<T> {
  const files = new Set<string>();
  mapFilePaths(v, (f) => (files.add(f), f));
  const mapped = new Map(await Promise.all([...files].map(async (f) => [f, await map(f)] as const)));
  return mapFilePaths(v, (f) => mapped.get(f)!);
}

/** Every file a build reads: its source, then each file key's path ('random' and 'original' are not files). */
export function filesOf(build: Build): string[] {
  const files = [build.source];
  mapFilePaths(build, (f) => (files.push(f), f));
  return [...new Set(files)];
}

/** Reports every referenced file that is missing or of the wrong kind, at the recipe value naming it. */
export function checkFiles(src: Source, builds: Build[]): void {
  const stats = new Map<string, Stats | string | undefined>();
  const stat = (p: string) => {
    if (!stats.has(p)) {
      try {
        stats.set(p, statSync(p, { throwIfNoEntry: false }));
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        stats.set(p, `cannot open ${p}: ${code === 'ELOOP' ? 'a symlink loop' : (code ?? (e as Error).message)}`); // a loop, a permission problem
      }
    }
    return stats.get(p);
  };
  const check = (b: Build, key: string, file: string, kind: FileKind) => {
    const s = stat(file);
    const problem = typeof s === 'string'
      ? s
      : !s
      ? `file not found: ${file}`
      : kind === 'model' && !s.isFile()
        ? `expected an .onnx file, found ${describeStat(s)}: ${file}`
        : kind === 'data' && s.isFile() && !dataExtensions.includes(path.extname(file).toLowerCase())
          ? `unsupported data file type: ${file} (expected ${dataExtensions.join(', ')} or a folder)`
          : undefined;
    if (!problem) return;
    const keys = positionOf(b, key).path.split('.');
    src.report(keys, problem, 'value');
  };
  for (const b of builds) {
    check(b, 'source', b.source, 'model');
    for (const [key, kind] of FILE_KEYS) {
      const value = key.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), b);
      if (isPath(value)) check(b, key, value, kind);
    }
  }
}
