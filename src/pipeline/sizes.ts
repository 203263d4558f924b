/**
 * gzip / brotli sizes of a model, cheap enough to run on every build.
 *
 * Measuring a 100 MB model exactly costs seconds of CPU (gzip level 6 runs at ~15–30 MB/s on float
 * weights, brotli quality 5 at ~30–50 MB/s), more than the compression it reports on. So:
 *
 * - a file of at most `exactBytes` is compressed whole, streamed: its chunks (an encoding's pieces, views
 *   into tensors) are fed to zlib's stream API in ≤ 1 MiB pieces and only output lengths are kept, so no
 *   joined copy of the model and no compressed copy ever exist;
 * - a larger file gets an estimate from a stratified sample: the file is cut into `chunks` equal strata,
 *   one `chunkBytes` window at a deterministic pseudo-random position inside each is compressed on its
 *   own, and the file's size is (file bytes) × (mean compressed/raw ratio of the windows). The spread of
 *   the windows' ratios gives `samplingError` (two standard errors of the mean). gzip sees at most 32 KiB
 *   back, so each window is deflated with the 32 KiB before it as a preset dictionary: exactly the
 *   context it has in the real stream. Brotli looks further back than a window can give it; its
 *   estimate may be off by a little more than `samplingError` (−0.2 % on pruned float weights).
 *
 * Both run in libuv's thread pool (node:zlib's asynchronous API), so they overlap verification and
 * evaluation on the main thread; the main thread only slices the windows. Not a worker_thread: that
 * would need the bytes copied or transferred to it, while zlib's native threads read them in place. The settings used are recorded
 * in the manifest (`sizes.compression`), and each estimated figure says so (`SizeStats.estimate`).
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import zlib from 'node:zlib';
import { readFullAt } from '../onnx/paths.js';

export const GZIP_LEVEL = 6;
export const BROTLI_QUALITY = 5;

export interface SizeSettings {
  gzipLevel: number;
  brotliQuality: number;
  /** Files up to this many bytes are measured exactly; larger ones are estimated from samples. */
  exactBytes: number;
  /** Sampling of larger files: `chunks` windows of `chunkBytes` each, one per stratum. */
  sample: { chunks: number; chunkBytes: number };
}

export const SIZE_SETTINGS: SizeSettings = {
  gzipLevel: GZIP_LEVEL,
  brotliQuality: BROTLI_QUALITY,
  exactBytes: 8 * 2 ** 20,
  sample: { chunks: 16, chunkBytes: 32 * 2 ** 10 },
};

/** How an estimated figure was made (absent when the sizes are exact). */
export interface SizeEstimate {
  method: 'sampled';
  /** Bytes compressed to make the estimate, and in how many windows. */
  sampledBytes: number;
  windows: number;
  /**
   * Two standard errors of the estimate from the spread of the windows, relative to it (0.004 = ±0.4 %).
   * It does not cover the small upward bias of compressing windows without their preceding context.
   */
  samplingError: { gzip: number; brotli: number };
}

export interface CompressedSizes {
  gzip: number;
  brotli: number;
  estimate?: SizeEstimate;
}

/** A file as the pieces it is written from (one Uint8Array for a file read whole). */
export type FileChunks = readonly Uint8Array[];

const PIECE = 1 << 20;

/** ≤ 1 MiB pieces of a chunk list: large chunks are cut into views, runs of small ones copied together. */
function* pieces(chunks: FileChunks): Generator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  const flush = function* () {
    if (!pendingBytes) return;
    const out = new Uint8Array(pendingBytes);
    let at = 0;
    for (const c of pending) {
      out.set(c, at);
      at += c.length;
    }
    pending = [];
    pendingBytes = 0;
    yield out;
  };
  for (const c of chunks) {
    if (c.length >= PIECE / 4) {
      yield* flush();
      for (let at = 0; at < c.length; at += PIECE) yield c.subarray(at, Math.min(c.length, at + PIECE));
      continue;
    }
    if (pendingBytes + c.length > PIECE) yield* flush();
    pending.push(c);
    pendingBytes += c.length;
  }
  yield* flush();
}

/** Output bytes of a compression stream fed `chunks`, keeping nothing but the count. */
function streamedLength(stream: zlib.Gzip | zlib.BrotliCompress, chunks: FileChunks): Promise<number> {
  return new Promise((resolve, reject) => {
    let n = 0;
    stream.on('data', (d: Buffer) => (n += d.length));
    stream.on('error', reject);
    stream.on('end', () => resolve(n));
    const it = pieces(chunks);
    const pump = () => {
      for (;;) {
        const r = it.next();
        if (r.done) return void stream.end();
        // Node keeps a reference to each piece until zlib has consumed it; back-pressure bounds how many.
        if (!stream.write(r.value)) return void stream.once('drain', pump);
      }
    };
    pump();
  });
}

function gzipStream(settings: SizeSettings): zlib.Gzip {
  return zlib.createGzip({ level: settings.gzipLevel, chunkSize: 256 * 1024 });
}

function brotliStream(settings: SizeSettings, sizeHint: number): zlib.BrotliCompress {
  return zlib.createBrotliCompress({
    chunkSize: 256 * 1024,
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: settings.brotliQuality,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: sizeHint,
    },
  });
}

function byteLengthOf(chunks: FileChunks): number {
  let n = 0;
  for (const c of chunks) n += c.length;
  return n;
}

/**
 * Exact gzip / brotli sizes of one file, streamed in ≤ 1 MiB pieces. The pieces are taken before the
 * first await (small chunks copied together, large ones cut into views): the figures keep no reference
 * to the chunk list, whose views may pin much larger buffers (a source file, all of a model's tensors).
 */
export function exactSizes(chunks: FileChunks, settings: SizeSettings = SIZE_SETTINGS): Promise<CompressedSizes> {
  const total = byteLengthOf(chunks);
  const list = [...pieces(chunks)].map((p) => (p.buffer.byteLength > 2 * p.length + PIECE ? p.slice() : p));
  return Promise.all([streamedLength(gzipStream(settings), list), streamedLength(brotliStream(settings, total), list)]).then(([gzip, brotli]) => ({ gzip, brotli }));
}

/** mulberry32, seeded from the file length: the same file always samples the same windows. */
function positions(total: number, settings: SizeSettings): number[] {
  const { chunks: k, chunkBytes } = settings.sample;
  let s = (total ^ 0x9e3779b9) >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out: number[] = [];
  for (let i = 0; i < k; i++) {
    const start = Math.floor((i * total) / k);
    const end = Math.floor(((i + 1) * total) / k);
    out.push(start + Math.floor(next() * Math.max(0, end - start - chunkBytes)));
  }
  return out;
}

/** Copies bytes [at, at + n) of a chunk list (n small: one sample window). */
function window(chunks: FileChunks, starts: Float64Array, at: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  // Last chunk starting at or before `at`.
  let lo = 0;
  let hi = chunks.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (starts[mid] <= at) lo = mid;
    else hi = mid - 1;
  }
  let filled = 0;
  for (let i = lo; i < chunks.length && filled < n; i++) {
    const c = chunks[i];
    const from = i === lo ? at - starts[i] : 0;
    const take = Math.min(c.length - from, n - filled);
    if (take > 0) out.set(c.subarray(from, from + take), filled);
    filled += Math.max(0, take);
  }
  return out;
}

/** Raw deflate size of `b` given the bytes before it as history (gzip's framing is added once per file). */
const deflateAsync = (b: Uint8Array, level: number, history: Uint8Array | undefined) =>
  new Promise<number>((res, rej) => zlib.deflateRaw(b, { level, ...(history?.length && { dictionary: history }) }, (e, r) => (e ? rej(e) : res(r.length))));
const brotliAsync = (b: Uint8Array, quality: number) =>
  new Promise<number>((res, rej) =>
    zlib.brotliCompress(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: quality, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }, (e, r) =>
      e ? rej(e) : res(r.length),
    ),
  );

/** gzip's header and trailer; a brotli stream's few framing bytes, which each window's size includes. */
const GZIP_FRAME = 18;
const BROTLI_FRAME = 4;

/** Mean ratio and two standard errors of it, relative to the mean. */
function meanAndError(ratios: number[]): { mean: number; rel: number } {
  const n = ratios.length;
  const mean = ratios.reduce((a, b) => a + b, 0) / n;
  if (n < 2 || mean <= 0) return { mean, rel: 0 };
  const variance = ratios.reduce((a, r) => a + (r - mean) ** 2, 0) / (n - 1);
  return { mean, rel: (2 * Math.sqrt(variance / n)) / mean };
}

/**
 * Estimated gzip / brotli sizes of one file from a stratified sample of windows. The windows are copied
 * before this returns; the promise keeps no reference to `chunks`.
 */
export function sampledSizes(chunks: FileChunks, settings: SizeSettings = SIZE_SETTINGS): Promise<CompressedSizes> {
  const total = byteLengthOf(chunks);
  const starts = new Float64Array(chunks.length);
  for (let i = 1; i < chunks.length; i++) starts[i] = starts[i - 1] + chunks[i - 1].length;
  const n = Math.min(settings.sample.chunkBytes, total);
  const at = positions(total, settings);
  const windows = at.map((p) => window(chunks, starts, p, n));
  const histories = at.map((p) => (p > 0 ? window(chunks, starts, Math.max(0, p - GZIP_HISTORY), Math.min(p, GZIP_HISTORY)) : undefined));
  return estimateFrom(windows, histories, total, n, settings);
}

/** deflate's window: the history that can matter to a gzip window. */
const GZIP_HISTORY = 32 * 1024;

async function estimateFrom(windows: Uint8Array[], histories: (Uint8Array | undefined)[], total: number, n: number, settings: SizeSettings): Promise<CompressedSizes> {
  const measured = await Promise.all(
    windows.map(async (w, i) => [await deflateAsync(w, settings.gzipLevel, histories[i]), await brotliAsync(w, settings.brotliQuality)] as const),
  );
  const g = meanAndError(measured.map(([x]) => x / n));
  const b = meanAndError(measured.map(([, y]) => Math.max(0, y - BROTLI_FRAME) / n));
  return {
    gzip: Math.round(total * g.mean) + GZIP_FRAME,
    brotli: Math.round(total * b.mean) + BROTLI_FRAME,
    estimate: {
      method: 'sampled',
      sampledBytes: n * windows.length,
      windows: windows.length,
      samplingError: { gzip: round4(g.rel), brotli: round4(b.rel) },
    },
  };
}

const round4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** Bytes [at, at + n) of an open file. */
function preadBytes(fd: number, at: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  readFullAt(fd, out, at);
  return out;
}

/**
 * Sizes of a file on disk without reading it into memory: a small file is read and measured whole, a
 * large one sampled with positional reads of its windows (the same windows as for its bytes in memory).
 */
export function fileSizes(file: string, settings: SizeSettings = SIZE_SETTINGS): Promise<CompressedSizes> {
  const fd = openSync(file, 'r');
  try {
    const total = fstatSync(fd).size;
    if (total <= settings.exactBytes) return exactSizes([preadBytes(fd, 0, total)], settings);
    const n = Math.min(settings.sample.chunkBytes, total);
    const at = positions(total, settings);
    const windows = at.map((p) => preadBytes(fd, p, n));
    const histories = at.map((p) => (p > 0 ? preadBytes(fd, Math.max(0, p - GZIP_HISTORY), Math.min(p, GZIP_HISTORY)) : undefined));
    return estimateFrom(windows, histories, total, n, settings);
  } finally {
    closeSync(fd);
  }
}

/**
 * gzip / brotli sizes of a model stored as one or more files (a model and its external data files),
 * each given as its chunks. Files are compressed separately (as a server would send them) and summed;
 * if any file was estimated the result carries an estimate whose error is the largest of theirs.
 */
export function compressedSizes(files: readonly FileChunks[], settings: SizeSettings = SIZE_SETTINGS): Promise<CompressedSizes> {
  // Started (windows and pieces taken) synchronously, for every file, before anything is awaited.
  const started = files.map((f) => (byteLengthOf(f) <= settings.exactBytes ? exactSizes(f, settings) : sampledSizes(f, settings)));
  return Promise.all(started).then(sum);
}

/** compressedSizes of files on disk (a model and its external data files). */
export function compressedFileSizes(files: readonly string[], settings: SizeSettings = SIZE_SETTINGS): Promise<CompressedSizes> {
  return Promise.all(files.map((f) => fileSizes(f, settings))).then(sum);
}

function sum(each: CompressedSizes[]): CompressedSizes {
  const out: CompressedSizes = { gzip: 0, brotli: 0 };
  for (const s of each) {
    out.gzip += s.gzip;
    out.brotli += s.brotli;
    if (s.estimate) {
      const e = (out.estimate ??= { method: 'sampled', sampledBytes: 0, windows: 0, samplingError: { gzip: 0, brotli: 0 } });
      e.sampledBytes += s.estimate.sampledBytes;
      e.windows += s.estimate.windows;
      e.samplingError.gzip = Math.max(e.samplingError.gzip, s.estimate.samplingError.gzip);
      e.samplingError.brotli = Math.max(e.samplingError.brotli, s.estimate.samplingError.brotli);
    }
  }
  return out;
}
