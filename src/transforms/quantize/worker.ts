/**
 * Worker thread of parallel.ts: quantizes the weights of one message, answering one result per weight
 * with its arrays transferred. Values on disk are read here, through one reused buffer.
 */
import { closeSync, openSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { readFullAt } from '../../onnx/paths.js';
import type { Target } from './select.js';
import type { Plan } from './forms.js';
import type { WeightJob } from './parallel.js';
import { quantizeWeight } from './weights.js';

let scratch = new Float32Array(0);

function floats(job: WeightJob): Float32Array {
  if ('bytes' in job.source) return new Float32Array(job.source.bytes);
  const { file, offset, length } = job.source;
  const n = length / 4;
  if (scratch.length < n) scratch = new Float32Array(n);
  const bytes = new Uint8Array(scratch.buffer, 0, length);
  const fd = openSync(file, 'r');
  try {
    if (readFullAt(fd, bytes, offset) < length) throw new Error(`${file}: a weight reads past the end of the file`);
  } finally {
    closeSync(fd);
  }
  return scratch.subarray(0, n);
}

parentPort!.on('message', (jobs: WeightJob[]) => {
  for (const job of jobs) {
    try {
      const q = quantizeWeight(job.target as Target, job.plan as Plan, floats(job));
      // Codes may be a view of the scratch only if the kernel returned its input: they never are.
      const transfer = [q.codes.buffer, q.scales.buffer, q.zeros.buffer].filter((b, i, all) => all.indexOf(b) === i) as ArrayBuffer[];
      parentPort!.postMessage({ id: job.id, q }, transfer);
    } catch (e) {
      parentPort!.postMessage({ id: job.id, error: (e as Error).message });
    }
  }
});
