/**
 * Presentation of a result: the manifest of one build (a cached entry is shared by content, so identity and
 * paths are filled per build), and the files a build writes.
 */
import { mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeChunksAtomic } from '../onnx/io.js';
import { mapFilePaths } from '../recipe/files.js';
import type { Build } from '../recipe/types.js';
import { readWithStat, statCacheFor } from './hash.js';
import type { Manifest } from './manifest.js';
import { toPosix } from './key.js';
import type { CompressResult } from './result.js';
import { copyIfChanged } from './output.js';

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
    } as Record<string, unknown>, rel),
    steps: stored.steps,
    sizes: stored.sizes,
    ...(stored.accuracy && { accuracy: stored.accuracy }),
    ...(stored.latency && { latency: stored.latency }),
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
export function writeResult(result: CompressResult, outDir: string, manifestDir = outDir): { file: string; manifestFile: string } {
  const file = path.resolve(outDir, result.build.output);
  const manifestFile = path.resolve(manifestDir, `${result.build.id}.manifest.json`);
  mkdirSync(path.dirname(file), { recursive: true });
  mkdirSync(path.dirname(manifestFile), { recursive: true });
  // A file copy (the bytes never enter memory); the cache folder's stat cache remembers the destination.
  const stats = path.basename(result.file) === `${result.key}.onnx` ? statCacheFor(path.dirname(result.file)) : undefined;
  copyIfChanged(result.file, file, result.manifest.output.sha256, stats);
  stats?.flush();
  writeIfChanged(manifestFile, Buffer.from(JSON.stringify(result.manifest, null, 2) + '\n'));
  return { file, manifestFile };
}

export function writeIfChanged(file: string, bytes: Uint8Array): void {
  const st = statSync(file, { throwIfNoEntry: false });
  if (st?.isFile() && st.size === bytes.byteLength) {
    const old = readWithStat(file);
    if (old && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(old.bytes)) return;
  }
  writeChunksAtomic(file, { chunks: [bytes], byteLength: bytes.byteLength });
}
