/**
 * Worker thread of parallel.ts: prunes the float32 weight in each message in place, by magnitude, and
 * sends its buffer back (transferred) with the zero count and the weight error.
 */
import { parentPort } from 'node:worker_threads';
import type { WeightJob } from './parallel.js';
import { pruneMagnitudeInPlace } from './unstructured.js';

parentPort!.on('message', (job: WeightJob) => {
  try {
    const r = pruneMagnitudeInPlace(new Float32Array(job.bytes, 0, job.n), job.rate);
    parentPort!.postMessage({ i: job.i, bytes: job.bytes, zeros: r.zeros, weightError: r.weightError }, [job.bytes]);
  } catch (e) {
    parentPort!.postMessage({ i: job.i, error: (e as Error).message ?? String(e) });
  }
});
