/**
 * Presentation of a result: the manifest of one build (a cached entry is shared by content, so identity and
 * paths are filled per build), and the files a build writes.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { mapFilePaths } from '../recipe/files.js';
import type { Build } from '../recipe/types.js';
import { commitFiles, defaultTempDir } from './commit.js';
import { statCacheFor } from './hash.js';
import { sweepOnce } from './temps.js';
import type { Manifest } from './manifest.js';
import { toPosix } from './key.js';
import type { CompressResult } from './result.js';
import { hashFileStreamed, sameBytes } from './output.js';

/** A path for messages: relative to cwd when inside it. */
export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** The manifest for this build: identity and paths from the build, relative to the recipe's folder (else cwd). */
export function present(stored: Manifest, build: Build, recipeFile: string | undefined): Manifest {
  const root = recipeFile ? path.dirname(path.resolve(recipeFile)) : process.cwd();
  const rel = (p: string) => toPosix(path.relative(root, p)) || '.';
  return {
    tool: stored.tool,
    id: build.id,
    name: build.name,
    ...(build.variant !== undefined && { variant: build.variant }),
    source: { ...stored.source, file: rel(build.source) },
    output: { ...stored.output, file: build.output },
    recipe: mapFilePaths({
      steps: build.steps,
      ...(build.calibration && { calibration: build.calibration }),
      ...(build.evaluate && { evaluate: build.evaluate }),
      ...(build.budget && { budget: build.budget }),
      device: build.device,
      emit: build.emit,
      ...(build.webCheck === false && { webCheck: false }),
    } as Record<string, unknown>, rel),
    steps: stored.steps,
    sizes: stored.sizes,
    ...(stored.accuracy && { accuracy: stored.accuracy }),
    ...(stored.latency && { latency: stored.latency }),
    ...(stored.webCheck && { webCheck: stored.webCheck }),
    device: stored.device,
    warnings: [...stored.warnings],
    timings: stored.timings,
    cache: stored.cache,
  };
}

/**
 * Writes <outDir>/<build.output> and <outDir>/<name>[.<variant>].manifest.json atomically. A file that
 * already holds exactly these bytes is left alone (its mtime too, so watchers see no change).
 */
export function writeResult(result: CompressResult, outDir: string, manifestDir = outDir, tmpDir = defaultTempDir()): { file: string; manifestFile: string } {
  const file = path.resolve(outDir, result.build.output);
  const manifestFile = path.resolve(manifestDir, `${result.build.id}.manifest.json`);
  // Leftovers of writers killed before temps moved out of the output folder (hidden temps next to the outputs).
  sweepOnce(path.dirname(file));
  sweepOnce(path.dirname(manifestFile));
  // The model is a file copy (the bytes never enter memory); the cache folder's stat cache remembers the
  // destination. Model and manifest are committed together (temps in `tmpDir`, see commit.ts).
  const stats = path.basename(result.file) === `${result.key}.onnx` ? statCacheFor(path.dirname(result.file)) : undefined;
  const sha256 = result.manifest.output.sha256;
  const hashedAt = Date.now();
  commitFiles(
    [
      // Not the cache's file (which later builds read): this process's temp output, linked instead of copied.
      { file, copyFrom: result.file, unchanged: () => holds(file, result.file, sha256, stats), link: !stats },
      { file: manifestFile, bytes: Buffer.from(JSON.stringify(result.manifest, null, 2) + '\n') },
    ],
    tmpDir,
  );
  const st = statSync(file, { throwIfNoEntry: false });
  if (st) stats?.record(file, st, sha256, hashedAt);
  stats?.flush();
  return { file, manifestFile };
}

/**
 * Whether `dest` already holds the bytes of `src`, whose sha256 is `sha256`: from the stat cache, else by
 * comparing the two files (or hashing `dest` when it is `src` itself, a link made by an earlier call).
 */
function holds(dest: string, src: string, sha256: string, stats?: ReturnType<typeof statCacheFor>): boolean {
  const st = statSync(dest, { throwIfNoEntry: false });
  const from = statSync(src);
  if (!st?.isFile() || st.size !== from.size) return false;
  if (stats?.lookup(dest, st)?.sha256 === sha256) return true;
  return st.ino === from.ino && st.dev === from.dev ? hashFileStreamed(dest) === sha256 : sameBytes(dest, src);
}

/** Writes `file` unless it already holds exactly these bytes; the temp file goes to `tmpDir`, not next to it. */
export function writeIfChanged(file: string, bytes: Uint8Array, tmpDir = defaultTempDir()): void {
  commitFiles([{ file, bytes }], tmpDir);
}

