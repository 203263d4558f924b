/**
 * `build` starts hashing its recipe's large sources before it loads the command line and the pipeline
 * (~0.13 s of modules, ~0.2 s more for the steps' and onnxruntime's): the cache key needs each source's
 * sha256 first, and a 113 MB source takes ~0.13 s to hash (src/pipeline/hash.ts, hashEarly). Files the
 * stat cache knows are not read; the recipe is found by a scan of its text (relaunch.ts), so a source it
 * misses is only hashed later, where the pipeline asks.
 *
 * When the command relaunched itself (relaunch.ts), the first process, which otherwise only waits, hashes
 * the sources while the relaunched one starts (a Node start, ~0.13 s on a VM) and sends the hashes down a
 * pipe (handOverHashes); the relaunched process takes them from there (hashSourcesEarly) and hashes a file
 * itself only if none comes for the stat it sees. When it hashes a source it also starts the child process
 * that verifies outputs (src/runtime/isolate.ts), which the pipeline would otherwise start only once the
 * source is hashed.
 */
import { Socket } from 'node:net';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { defaultCacheDir } from '../pipeline/cache.js';
import { earlyHashable, type HandedHash, type HashHandOver, hashEarly, hashYielding, statCacheFor } from '../pipeline/hash.js';
import { warmIsolatedPool } from '../runtime/isolate.js';
import { commandModels, filesBytes, HAND_OVER_FD_ENV } from './relaunch.js';

/** The build's sources and the stat cache the pipeline will use (compress.ts): the cache folder's, or the process's own with --no-cache. */
function buildSources(argv: readonly string[]) {
  if (argv.find((a) => a !== '--debug') !== 'build') return undefined;
  const models = commandModels(argv);
  if (!models?.files.length) return undefined;
  const { options } = models;
  const cacheDir = options['no-cache'] === true ? undefined : path.resolve((options['cache-dir'] as string | undefined) ?? defaultCacheDir());
  return { files: models.files, stats: statCacheFor(cacheDir) };
}

/** Starts hashing the build's large sources, or takes them from the process that relaunched this one. */
export function hashSourcesEarly(argv: readonly string[]): void {
  const fd = Number(process.env[HAND_OVER_FD_ENV]);
  delete process.env[HAND_OVER_FD_ENV]; // not for this process's children
  const sources = buildSources(argv);
  if (!sources) return;
  const from = Number.isInteger(fd) && fd > 2 ? handOverFrom(fd) : undefined;
  // A source to hash means a build to verify, most likely: its onnxruntime child (~0.3 s to start) starts now too.
  if (hashEarly(sources.files, sources.stats, from) > 0) warmIsolatedPool(filesBytes(sources.files));
}

/**
 * In the process that relaunched the command: hashes the sources the relaunched process would hash early
 * (the same choice, from the same recipe and stat cache) and writes each hash to `pipe` as a line of JSON,
 * then closes it. A file it cannot read is left out: the relaunched process then hashes it and reports it.
 */
export async function handOverHashes(argv: readonly string[], pipe: Writable): Promise<void> {
  pipe.on('error', () => {}); // the relaunched process ended: nobody needs the hashes
  try {
    const sources = buildSources(argv);
    for (const [file, st] of sources ? earlyHashable(sources.files, sources.stats) : []) {
      const hashedAt = Date.now();
      let sha256: string;
      try {
        sha256 = await hashYielding(file);
      } catch {
        continue;
      }
      const h: HandedHash = { file, sha256, size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, hashedAt };
      pipe.write(`${JSON.stringify(h)}\n`);
    }
  } finally {
    pipe.end();
  }
}

/** The hashes arriving on descriptor `fd` (handOverHashes' lines); a file with none by the pipe's end gets undefined. */
function handOverFrom(fd: number): HashHandOver {
  const got = new Map<string, HandedHash>();
  const waiting = new Map<string, ((h: HandedHash | undefined) => void)[]>();
  const awaited = new Set<string>();
  let ended = false;
  let socket: Socket | undefined;
  // The pipe keeps this process alive only while the pipeline waits for a hash still to come.
  const hold = () => {
    if (!ended && [...awaited].some((f) => !got.has(f))) socket?.ref();
    else socket?.unref();
  };
  const end = () => {
    ended = true;
    for (const ws of waiting.values()) for (const w of ws) w(undefined);
    waiting.clear();
    hold();
  };
  try {
    socket = new Socket({ fd, readable: true, writable: false });
  } catch {
    end(); // not a pipe after all: hash here
  }
  if (socket) {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (s: string) => {
      text += s;
      for (let i; (i = text.indexOf('\n')) >= 0; text = text.slice(i + 1)) {
        let h: HandedHash;
        try {
          h = JSON.parse(text.slice(0, i)) as HandedHash;
        } catch {
          continue;
        }
        got.set(h.file, h);
        for (const w of waiting.get(h.file) ?? []) w(h);
        waiting.delete(h.file);
      }
      hold();
    });
    socket.on('end', end).on('close', end).on('error', end);
    hold();
  }
  return {
    take: (file) =>
      new Promise((resolve) => {
        if (got.has(file) || ended) resolve(got.get(file));
        else waiting.set(file, [...(waiting.get(file) ?? []), resolve]);
      }),
    awaited: (file) => {
      awaited.add(file);
      hold();
    },
  };
}
