/**
 * The content-addressed output cache: `<dir>/<key>.onnx` + `<dir>/<key>.json` (the manifest), plus
 * `<dir>/stats.json` (see hash.ts) and `<dir>/sizes-<source sha256>.json` (a source's size statistics).
 *
 * Both files are written through a temp file + rename, the model first and the manifest last, so a
 * manifest present implies a complete model. A reader still checks the model against the size and
 * sha256 the manifest records (the sha256 from the stat cache when the file is unchanged since it was
 * verified), so a truncated or corrupted entry is a miss and gets rewritten. Several processes may fill
 * the same entry at once: outputs are deterministic and renames atomic, so any interleaving leaves a
 * correct entry.
 */
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Encoded } from '../onnx/codec.js';
import { readFileBytes, writeChunksAtomic } from '../onnx/io.js';
import { hashFileStreamed } from './output.js';
import { readWithStat, type StatCache } from './hash.js';
import type { Manifest, SizeStats } from './manifest.js';
import { SIZE_SETTINGS } from './sizes.js';

export interface CacheEntry {
  /** The model file's bytes, read on each access. */
  readonly bytes: Uint8Array;
  manifest: Manifest;
}

export type CacheMiss = 'absent' | 'corrupt';

export class ModelCache {
  constructor(
    readonly dir: string,
    readonly stats: StatCache,
  ) {}

  modelFile(key: string): string {
    return join(this.dir, `${key}.onnx`);
  }

  manifestFile(key: string): string {
    return join(this.dir, `${key}.json`);
  }

  /**
   * The entry for `key`, or why there is none. Reads the manifest; the model file is only stat'ed when
   * the stat cache vouches for its hash, else hashed in 1 MiB reads. Its bytes are read when `bytes` is.
   */
  get(key: string): CacheEntry | CacheMiss {
    const m = readWithStat(this.manifestFile(key));
    if (!m) return 'absent';
    let manifest: Manifest;
    try {
      manifest = JSON.parse(m.bytes.toString('utf8')) as Manifest;
    } catch {
      return 'corrupt';
    }
    if (manifest?.cache?.key !== key || typeof manifest.output?.sha256 !== 'string') return 'corrupt';
    const file = this.modelFile(key);
    const st = statSync(file, { throwIfNoEntry: false });
    if (!st || st.size !== manifest.output.bytes) return 'corrupt';
    const known = this.stats.lookup(file, st);
    if (known?.sha256 !== manifest.output.sha256) {
      const hashedAt = Date.now();
      const actual = hashFileStreamed(file);
      if (actual !== manifest.output.sha256) return 'corrupt';
      const after = statSync(file, { throwIfNoEntry: false });
      if (after && after.size === st.size && after.mtimeMs === st.mtimeMs && after.ino === st.ino) this.stats.record(file, st, actual, hashedAt);
    }
    const entry = { manifest } as CacheEntry;
    Object.defineProperty(entry, 'bytes', { get: () => readFileBytes(file), enumerable: true });
    return entry;
  }

  /**
   * Writes an entry's model file alone (the pipeline verifies the output from it); the entry exists once
   * putManifest follows. `sha256` is the encoding's, recorded so a later get() need not re-hash; without
   * it the caller hashes the written file (hashFile records it in the same stat cache).
   */
  putModel(key: string, encoded: Encoded, sha256: string | undefined): void {
    mkdirSync(this.dir, { recursive: true });
    const file = this.modelFile(key);
    const hashedAt = Date.now();
    writeChunksAtomic(file, encoded);
    if (sha256 === undefined) return; // the caller hashes the file (hashFile records it)
    try {
      this.stats.record(file, statSync(file), sha256, hashedAt);
    } catch {
      // someone removed it already; the next get() re-checks
    }
  }

  /** Completes an entry whose model putModel wrote. */
  putManifest(key: string, manifest: Manifest): void {
    const text = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
    writeChunksAtomic(this.manifestFile(key), { chunks: [text], byteLength: text.length });
  }

  /** Stores an entry: model, then manifest. */
  put(key: string, model: Encoded | Uint8Array, manifest: Manifest): void {
    mkdirSync(this.dir, { recursive: true });
    const encoded: Encoded = model instanceof Uint8Array ? { chunks: [model], byteLength: model.byteLength } : model;
    const file = this.modelFile(key);
    const hashedAt = Date.now();
    writeChunksAtomic(file, encoded);
    try {
      this.stats.record(file, statSync(file), manifest.output.sha256, hashedAt);
    } catch {
      // someone removed it already; the next get() re-checks
    }
    const text = Buffer.from(JSON.stringify(manifest, null, 2) + '\n');
    writeChunksAtomic(this.manifestFile(key), { chunks: [text], byteLength: text.length });
  }

  /** Size statistics of a source model by its sha256 (gzip/brotli of 100 MB take seconds; variants share them). */
  getSizes(sourceSha: string): SizeStats | undefined {
    const r = readWithStat(join(this.dir, `sizes-${sourceSha}.json`));
    if (!r) return undefined;
    try {
      const s = JSON.parse(r.bytes.toString('utf8')) as SizeStats & { compression?: unknown };
      if (JSON.stringify(s.compression) !== JSON.stringify(SIZE_SETTINGS) || typeof s.gzip !== 'number') return undefined;
      const { compression: _, ...stats } = s;
      return stats as SizeStats;
    } catch {
      return undefined;
    }
  }

  putSizes(sourceSha: string, stats: SizeStats): void {
    mkdirSync(this.dir, { recursive: true });
    const text = Buffer.from(JSON.stringify({ ...stats, compression: SIZE_SETTINGS }));
    writeChunksAtomic(join(this.dir, `sizes-${sourceSha}.json`), { chunks: [text], byteLength: text.length });
  }

  /** Drops an entry (manifest first, so no reader sees a manifest without its model). */
  remove(key: string): void {
    rmSync(this.manifestFile(key), { force: true });
    rmSync(this.modelFile(key), { force: true });
  }
}

/**
 * `node_modules/.cache/onnx-compress` beside the nearest package.json at or above `root` (as Vite places
 * `.vite`), so a build started in a subfolder of a project still uses the project's cache; `root` itself
 * when no package.json is found. The plugin passes its root, the CLI and API the current folder.
 */
export function defaultCacheDir(root = process.cwd()): string {
  for (let dir = root; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return join(dir, 'node_modules', '.cache', 'onnx-compress');
    if (dirname(dir) === dir) return join(root, 'node_modules', '.cache', 'onnx-compress');
  }
}
