/**
 * `build` starts hashing its recipe's large sources on worker threads before it loads the command line
 * and the pipeline (~0.13 s of modules, ~0.2 s more for the steps' and onnxruntime's): the cache key
 * needs each source's sha256 first, and a 113 MB source takes ~0.13 s to hash (src/pipeline/hash.ts,
 * hashEarly). Files the stat cache knows are not read; the recipe is found by a scan of its text
 * (relaunch.ts), so a source it misses is only hashed later, where the pipeline asks. When it hashes a
 * source it also starts the child process that verifies outputs (src/runtime/isolate.ts), which the
 * pipeline would otherwise start only once the source is hashed.
 */
import path from 'node:path';
import { defaultCacheDir } from '../pipeline/cache.js';
import { hashEarly, statCacheFor } from '../pipeline/hash.js';
import { warmIsolatedPool } from '../runtime/isolate.js';
import { commandModels } from './relaunch.js';

export function hashSourcesEarly(argv: readonly string[]): void {
  if (argv.find((a) => a !== '--debug') !== 'build') return;
  const models = commandModels(argv);
  if (!models?.files.length) return;
  const { options } = models;
  // The stat cache the pipeline will use (compress.ts): the cache folder's, or the process's own with --no-cache.
  const cacheDir = options['no-cache'] === true ? undefined : path.resolve((options['cache-dir'] as string | undefined) ?? defaultCacheDir());
  // A source to hash means a build to verify, most likely: its onnxruntime child (~0.3 s to start) starts now too.
  if (hashEarly(models.files, statCacheFor(cacheDir)) > 0) warmIsolatedPool();
}
