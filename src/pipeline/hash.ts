/**
 * Content hashes of the files a build depends on, with a stat cache so an unchanged file is not re-read:
 * (path, size, mtimeMs, ino) → sha256, kept in `<cacheDir>/stats.json`. This is the hot path of a cache
 * hit: hashing a 100 MB model costs ~80-200 ms, a stat costs microseconds.
 *
 * A stat entry is only trusted when the file's mtime is clearly older than the moment hashing started
 * (git's "racy clean" rule): a file rewritten within the same timestamp tick as the hashed version would
 * otherwise keep its old hash.
 */
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync, type Stats } from 'node:fs';
import { join, relative } from 'node:path';
import { Worker } from 'node:worker_threads';
import { CompressError } from '../errors.js';
import { writeChunksAtomic } from '../onnx/io.js';
import { describeStat, readFullAt } from '../onnx/paths.js';
import { coreCount } from '../transforms/threads.js';

export interface StatEntry {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
  /** Date.now() when hashing began (the stat was taken just before). */
  hashedAt: number;
  /** External data files a model references (relative to its folder), once known. */
  deps?: string[];
}

const STATS_FILE = 'stats.json';
const MAX_ENTRIES = 4000;

/** Whole-second file systems (FAT, HFS+, some network mounts) need a wider racy window. */
function racyMarginMs(mtimeMs: number): number {
  return mtimeMs % 1000 === 0 ? 2500 : 100;
}

export class StatCache {
  private entries = new Map<string, StatEntry>();
  private dirty = false;

  /** `dir`: the cache directory holding stats.json, or undefined to keep the stats in memory only. */
  constructor(readonly dir?: string) {
    if (!dir) return;
    try {
      const data = JSON.parse(readFileSync(join(dir, STATS_FILE), 'utf8')) as { version?: number; entries?: Record<string, StatEntry> };
      if (data.version === 1 && data.entries) for (const [k, v] of Object.entries(data.entries)) this.entries.set(k, v);
    } catch {
      // missing or corrupt: start empty, it is only a cache
    }
  }

  /** The recorded entry for `file` if `st` shows the file unchanged since it was hashed. */
  lookup(file: string, st: Stats): StatEntry | undefined {
    const e = this.entries.get(file);
    if (!e || e.size !== st.size || e.mtimeMs !== st.mtimeMs || e.ino !== st.ino) return undefined;
    if (e.mtimeMs >= e.hashedAt - racyMarginMs(e.mtimeMs)) return undefined; // racy: re-hash to be sure
    return e;
  }

  record(file: string, st: Stats, sha256: string, hashedAt: number, deps?: string[]): void {
    const prev = this.entries.get(file);
    if (prev && prev.sha256 === sha256 && prev.size === st.size && prev.mtimeMs === st.mtimeMs && prev.ino === st.ino && prev.hashedAt === hashedAt) return;
    this.entries.delete(file); // re-insert last: the map's order is least-recently-recorded first
    this.entries.set(file, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256, hashedAt, ...(deps && { deps }) });
    this.dirty = true;
  }

  setDeps(file: string, deps: string[]): void {
    const e = this.entries.get(file);
    if (e && JSON.stringify(e.deps) !== JSON.stringify(deps)) {
      e.deps = deps;
      this.dirty = true;
    }
  }

  /** Writes stats.json if anything changed (atomically; merging what other processes recorded meanwhile). */
  flush(): void {
    if (!this.dir || !this.dirty) return;
    this.dirty = false;
    let disk: Record<string, StatEntry> = {};
    try {
      disk = (JSON.parse(readFileSync(join(this.dir, STATS_FILE), 'utf8')) as { entries?: Record<string, StatEntry> }).entries ?? {};
    } catch {
      // nothing to merge
    }
    const merged = new Map<string, StatEntry>(Object.entries(disk));
    for (const [k, v] of this.entries) {
      merged.delete(k);
      merged.set(k, v);
    }
    const all = [...merged];
    const kept = all.slice(Math.max(0, all.length - MAX_ENTRIES));
    try {
      mkdirSync(this.dir, { recursive: true });
      const text = Buffer.from(JSON.stringify({ version: 1, entries: Object.fromEntries(kept) }));
      writeChunksAtomic(join(this.dir, STATS_FILE), { chunks: [text], byteLength: text.length });
    } catch {
      // a read-only cache folder only costs re-hashing next time
    }
  }
}

function statOrThrow(file: string): Stats {
  try {
    return statSync(file);
  } catch (e) {
    throw new CompressError('io', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
}

/**
 * Streams a file through sha256 in 1 MiB synchronous reads. Synchronous on purpose: libuv's thread pool
 * (which fs streams use) is often busy with other builds' gzip/brotli jobs, and a cache hit must not
 * wait behind them. `onChunk` sees every chunk (e.g. to look for a byte pattern).
 */
function streamHash(file: string, onChunk?: (chunk: Buffer) => void): string {
  const h = createHash('sha256');
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      h.update(chunk);
      onChunk?.(chunk);
    }
  } catch (e) {
    throw new CompressError('io', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  return h.digest('hex');
}

/**
 * From this size on, hashFile hashes on a worker thread (where there are two cores or more), so that the
 * calling thread can do other work meanwhile: computeKey lists a large source's external data and the
 * pipeline loads the build's modules while the source is hashed (113 MB: ~0.13 s).
 */
export const WORKER_HASH_FROM = 64 * 2 ** 20;

/** The worker's code: streamHash's loop, plain CommonJS (it runs from the sources in tests too). */
const HASH_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
let fd;
try {
  fd = openSync(workerData, 'r');
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  parentPort.postMessage({ sha256: h.digest('hex') });
} catch (e) {
  parentPort.postMessage({ error: (e && (e.code || e.message)) || String(e) });
} finally {
  if (fd !== undefined) closeSync(fd);
}`;

/**
 * A hash running elsewhere: on a worker thread (or waiting for a free one), or in the process that
 * relaunched this one (handedHash). `unref` lets the process end before it is done (see hashEarly).
 */
interface WorkerHash {
  sha256: Promise<string>;
  /** Date.now() when hashing began (final once `sha256` is settled). */
  hashedAt: number;
  ref(): void;
  unref(): void;
}

/** Hashing threads at once: one per core but this thread's; more wait for a free one. */
let freeThreads = -1;
const waitingForThread: (() => void)[] = [];

let workerHashes = 0;

/** How many files this process has hashed on worker threads (for tests). */
export function workerHashCount(): number {
  return workerHashes;
}

function hashOnWorker(file: string): WorkerHash {
  workerHashes++;
  const hashedAt = Date.now();
  let worker: Worker | undefined;
  let referenced = true;
  const sha256 = new Promise<string>((resolve, reject) => {
    const start = () => {
      let settled = false;
      const settle = (f: () => void) => {
        if (settled) return;
        settled = true;
        const next = waitingForThread.shift();
        if (next) next();
        else freeThreads++;
        f();
      };
      try {
        worker = new Worker(HASH_WORKER, { eval: true, workerData: file });
      } catch (e) {
        settle(() => reject(new CompressError('io', `cannot start a thread to hash it: ${(e as Error).message}`, { file })));
        return;
      }
      if (!referenced) worker.unref();
      worker.once('message', (m: { sha256?: string; error?: string }) =>
        settle(() => (m.sha256 ? resolve(m.sha256) : reject(new CompressError('io', `cannot read: ${m.error}`, { file })))),
      );
      worker.once('error', (e) => settle(() => reject(new CompressError('io', `cannot read: ${(e as Error).message}`, { file }))));
      worker.once('exit', (code) => settle(() => reject(new CompressError('io', `cannot read: the hashing thread exited (${code})`, { file }))));
    };
    if (freeThreads < 0) freeThreads = Math.max(1, coreCount() - 1);
    if (freeThreads > 0) {
      freeThreads--;
      start();
    } else waitingForThread.push(start);
  });
  return {
    sha256,
    hashedAt,
    ref: () => {
      referenced = true;
      worker?.ref();
    },
    unref: () => {
      referenced = false;
      worker?.unref();
    },
  };
}

/** A file's hash computed by another process (the one that relaunched this; src/cli/early-hash.ts), with the stat it was started on. */
export interface HandedHash {
  file: string;
  sha256: string;
  size: number;
  mtimeMs: number;
  ino: number;
  hashedAt: number;
}

/** Where hashes computed by another process arrive. */
export interface HashHandOver {
  /** The other process's hash of `file`; undefined when it sends none (this process then hashes the file). */
  take(file: string): Promise<HandedHash | undefined>;
  /** Someone waits for `file`'s hash now: waiting for it keeps this process alive. */
  awaited(file: string): void;
}

/** A hash another process sends, used if it was taken of the stat `st`; otherwise the file is hashed on a worker. */
function handedHash(file: string, st: Stats, from: HashHandOver): WorkerHash {
  let own: WorkerHash | undefined;
  let referenced = false;
  const h: WorkerHash = {
    hashedAt: Date.now(),
    sha256: from.take(file).then((r) => {
      if (r && r.size === st.size && r.mtimeMs === st.mtimeMs && r.ino === st.ino) {
        h.hashedAt = r.hashedAt;
        return r.sha256;
      }
      own = hashOnWorker(file);
      if (!referenced) own.unref();
      h.hashedAt = own.hashedAt;
      return own.sha256;
    }),
    ref: () => {
      referenced = true;
      from.awaited(file);
      own?.ref();
    },
    unref: () => {
      referenced = false;
      own?.unref();
    },
  };
  return h;
}

/** Hashes started by hashEarly, by path, with the stat they were started on. */
const early = new Map<string, { st: Stats; hash: WorkerHash }>();

/** The files of `files` that hashEarly would hash now (with their stats): large ones `stats` does not know. */
export function earlyHashable(files: readonly string[], stats: StatCache): [string, Stats][] {
  if (coreCount() < 2) return [];
  const out: [string, Stats][] = [];
  for (const file of files) {
    let st: Stats;
    try {
      st = statSync(file);
    } catch {
      continue; // hashFile reports it
    }
    if (st.isFile() && st.size >= WORKER_HASH_FROM && !stats.lookup(file, st)) out.push([file, st]);
  }
  return out;
}

/**
 * Starts hashing, on worker threads, the given files that will be hashed soon: those of at least
 * WORKER_HASH_FROM bytes that `stats` does not know (a cache hit by stat reads nothing). The command line
 * calls it for a recipe's sources before it loads the pipeline (~0.13 s of modules), so that a 113 MB
 * source's hash (~0.13 s) is done by then. hashFile takes a hash from here when the file's stat is still
 * the one it started on. A hash nobody takes does not keep the process alive. Answers how many it started.
 */
export function hashEarly(files: readonly string[], stats: StatCache, from?: HashHandOver): number {
  const before = early.size;
  for (const [file, st] of earlyHashable(files, stats)) {
    if (early.has(file)) continue;
    const hash = from ? handedHash(file, st, from) : hashOnWorker(file);
    hash.sha256.catch(() => {}); // whoever takes it sees the error
    hash.unref();
    early.set(file, { st, hash });
  }
  return early.size - before;
}

/**
 * sha256 of a file in 4 MiB reads on this thread, yielding to the event loop between reads: for a process
 * with nothing else to do that must still answer signals (the relaunch's parent, src/cli/early-hash.ts).
 */
export async function hashYielding(file: string): Promise<string> {
  const h = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) {
      h.update(buf.subarray(0, n));
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** Files whose early hash is running or done and not yet taken (for tests). */
export function pendingEarlyHashes(): string[] {
  return [...early.keys()];
}

/** The early hash of `file` (hashEarly) if it was started on this very stat of the file. */
function takeEarly(file: string, st: Stats): WorkerHash | undefined {
  const e = early.get(file);
  if (!e) return undefined;
  early.delete(file);
  if (e.st.size !== st.size || e.st.mtimeMs !== st.mtimeMs || e.st.ino !== st.ino) return undefined;
  e.hash.ref();
  return e.hash;
}

export function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export interface FileHash {
  sha256: string;
  bytes: number;
  /** Only for hashModel: whether the file may reference external data (a "location" key occurs in it). */
  mayReferenceExternal?: boolean;
  entry?: StatEntry;
}

/**
 * sha256 of a file, from the stat cache when the file is unchanged. A large file is hashed on a worker
 * thread (WORKER_HASH_FROM); `onWorker` is called once that has started (work for this thread meanwhile; it must not throw).
 */
export async function hashFile(file: string, stats: StatCache, opts: { scanExternal?: boolean; onWorker?: () => void } = {}): Promise<FileHash> {
  const st = statOrThrow(file);
  if (!st.isFile()) throw new CompressError('io', `expected a file, found ${describeStat(st)}`, { file });
  const known = stats.lookup(file, st);
  if (known && (!opts.scanExternal || known.deps)) return { sha256: known.sha256, bytes: st.size, entry: known };
  if (!opts.scanExternal && st.size >= WORKER_HASH_FROM && coreCount() > 1) {
    const hash = takeEarly(file, st) ?? hashOnWorker(file);
    opts.onWorker?.();
    const sha = await hash.sha256;
    return remember(file, st, sha, hash.hashedAt, stats, known);
  }
  const hashedAt = Date.now();
  let found = false;
  let tail: Buffer = Buffer.alloc(0);
  const needle = Buffer.from('location');
  const sha = streamHash(
    file,
    opts.scanExternal
      ? (chunk) => {
          if (found) return;
          const window = tail.length ? Buffer.concat([tail, chunk.subarray(0, needle.length)]) : undefined;
          if ((window && window.includes(needle)) || chunk.includes(needle)) found = true;
          tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - needle.length + 1))); // the buffer is reused
        }
      : undefined,
  );
  return { ...remember(file, st, sha, hashedAt, stats, known), mayReferenceExternal: found };
}

/** Records a file's hash in the stat cache, unless the file changed while it was read. */
function remember(file: string, st: Stats, sha: string, hashedAt: number, stats: StatCache, known: StatEntry | undefined): FileHash {
  const after = statOrThrow(file);
  if (after.size === st.size && after.mtimeMs === st.mtimeMs && after.ino === st.ino) stats.record(file, st, sha, hashedAt, known?.deps);
  return { sha256: sha, bytes: st.size, entry: stats.lookup(file, after) ?? undefined };
}

/** A folder's hash: every file below it (sorted, by relative path) with its content hash. */
export async function hashFolder(dir: string, stats: StatCache): Promise<string> {
  const files: string[] = [];
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch (e) {
      throw new CompressError('io', `cannot read folder: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file: d });
    }
    for (const name of names) {
      const p = join(d, name);
      const st = statOrThrow(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) files.push(p);
    }
  };
  walk(dir);
  const h = createHash('sha256');
  for (const f of files) h.update(`${relative(dir, f).split('\\').join('/')}\0${(await hashFile(f, stats)).sha256}\n`);
  return h.digest('hex');
}

/** Hash of a file or a folder. */
export async function hashPath(p: string, stats: StatCache): Promise<string> {
  const st = statOrThrow(p);
  return st.isDirectory() ? hashFolder(p, stats) : (await hashFile(p, stats)).sha256;
}

/** Reads a whole file through one descriptor and returns the bytes with the stat of exactly that file. */
export function readWithStat(file: string): { bytes: Buffer; stat: Stats } | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const stat = fstatSync(fd);
    const bytes = Buffer.allocUnsafeSlow(stat.size);
    const at = readFullAt(fd, bytes, 0);
    return { bytes: at === stat.size ? bytes : bytes.subarray(0, at), stat };
  } finally {
    closeSync(fd);
  }
}

const statCaches = new Map<string, StatCache>();
const memoryStats = new StatCache();

/** The process's StatCache of a cache folder (one per folder, so all builds share it); in memory without one. */
export function statCacheFor(cacheDir: string | undefined): StatCache {
  if (!cacheDir) return memoryStats;
  let s = statCaches.get(cacheDir);
  if (!s) statCaches.set(cacheDir, (s = new StatCache(cacheDir)));
  return s;
}
