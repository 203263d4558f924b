/**
 * Magnitude pruning of many weights in place on several cores (the pipeline's in-place path, index.ts).
 *
 * The weights are the model's own bytes, which workers cannot share: each worker is sent a copy of one
 * weight at a time in a transferable buffer, prunes it and sends the buffer back; this thread copies the
 * result into place and sends the next weight in the same buffer. Two weights are in flight per worker,
 * so a worker never waits for this thread, which prunes weights of its own in between (one per turn,
 * then it answers the workers). Memory: two weight-sized buffers and a V8 heap per worker. Each weight
 * is pruned by the same function as on one thread, so the model and the report are the same.
 *
 * Workers run only when it pays (threadCount(): from 4 cores, or ONNX_COMPRESS_THREADS), for at least
 * MIN_PARALLEL_BYTES of weights, and with a compiled worker file (tests that run the TypeScript sources
 * prune on one thread). A worker that fails leaves its weights untouched: they are pruned here.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { threadCount } from '../threads.js';

/** Below this many bytes of weights one thread is faster than starting workers. */
export const MIN_PARALLEL_BYTES = 16 * 2 ** 20;

/** One weight for a worker: its float32 values in `bytes` (n of them), pruned at `rate`. */
export interface WeightJob {
  i: number;
  bytes: ArrayBuffer;
  n: number;
  rate: number;
}

export interface Pruned {
  zeros: number;
  weightError: number;
}

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');

/**
 * Prunes every weight in place — `raws[i]`, the little-endian float32 bytes of weight i — at `rate`;
 * `local(i)` prunes weight i on this thread. Answers each weight's result, or undefined when one thread
 * would do (the caller then prunes each itself). `done(i)` is called as each weight is finished.
 */
export async function pruneInPlaceParallel(raws: readonly Uint8Array[], rate: number, local: (i: number) => Pruned, done?: (i: number) => void): Promise<Pruned[] | undefined> {
  const threads = threadCount();
  const total = raws.reduce((n, r) => n + r.byteLength, 0);
  if (threads < 2 || raws.length < 2 || total < MIN_PARALLEL_BYTES || !existsSync(WORKER)) return undefined;
  const results = new Array<Pruned>(raws.length);
  let next = 0;
  const take = () => (next < raws.length ? next++ : -1);
  const finish = (i: number, r: Pruned) => {
    results[i] = r;
    done?.(i);
  };
  const workers = Array.from({ length: Math.min(threads - 1, raws.length - 1) }, () => {
    const worker = new Worker(WORKER);
    const inFlight = new Set<number>();
    const send = (buffer?: ArrayBuffer): void => {
      const i = take();
      if (i < 0) return;
      const raw = raws[i];
      const bytes = buffer && buffer.byteLength >= raw.byteLength ? buffer : new ArrayBuffer(raw.byteLength);
      new Uint8Array(bytes, 0, raw.byteLength).set(raw);
      inFlight.add(i);
      worker.postMessage({ i, bytes, n: raw.byteLength / 4, rate } satisfies WeightJob, [bytes]);
    };
    const settled = new Promise<void>((resolve) => {
      // A failed worker's weights are pruned here; its other weights were never changed.
      const fail = () => {
        for (const i of inFlight) finish(i, local(i));
        inFlight.clear();
        void worker.terminate();
        resolve();
      };
      worker.on('message', (m: { i: number; bytes?: ArrayBuffer; zeros?: number; weightError?: number; error?: string }) => {
        if (m.error !== undefined || !m.bytes) return fail();
        raws[m.i].set(new Uint8Array(m.bytes, 0, raws[m.i].byteLength));
        inFlight.delete(m.i);
        finish(m.i, { zeros: m.zeros!, weightError: m.weightError! });
        send(m.bytes);
        if (inFlight.size === 0) {
          void worker.terminate();
          resolve();
        }
      });
      worker.on('error', fail);
      worker.on('exit', () => (inFlight.size ? fail() : resolve()));
    });
    send();
    send();
    if (inFlight.size === 0) void worker.terminate(); // nothing left for it: 'exit' settles it
    return settled;
  });
  // This thread's share: one weight per turn, then the workers' messages are handled.
  for (let i = take(); i >= 0; i = take()) {
    finish(i, local(i));
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(workers);
  return results;
}
