/**
 * Round-to-nearest quantization of many weights on several cores.
 *
 * The weights are split into two shares of about equal bytes per thread: worker threads take theirs as
 * one message and answer one result per weight (codes, scales and zero points transferred, not
 * copied), while the calling thread quantizes its own share meanwhile. A weight still on disk (a lazy
 * read) is read by the thread that quantizes it, so nothing is copied to a worker; one in memory is
 * copied into a transferable buffer for it. Results are exactly what quantizeWeight gives on one thread.
 *
 * Workers are started only when it pays: at least `MIN_PARALLEL_BYTES` of weights, a compiled worker
 * file (tests that run the TypeScript sources quantize on one thread), and at least 4 cores by default:
 * on a 2-core machine a worker measured no faster for the 113 MB model (the second core was rarely
 * free) and cost ~85 MB of memory (its own V8 heap and modules). ONNX_COMPRESS_THREADS=n sets the
 * thread count (1: no workers; 2 on a 2-core machine: one worker).
 */
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { checkLocation, externalRef } from '../../onnx/external.js';
import type { TensorProto } from '../../onnx/types.js';
import type { Plan } from './forms.js';
import type { Target } from './select.js';
import { quantizeWeight, type WeightQuant } from './weights.js';
import { threadCount } from '../threads.js';


/** Below this many bytes of weights one thread is faster than starting workers (~30–50 ms each). */
export const MIN_PARALLEL_BYTES = 16 * 2 ** 20;

/** What a worker needs to quantize one weight. */
export interface WeightJob {
  id: number;
  target: Pick<Target, 'shape' | 'channelAxis' | 'reduceAxis'>;
  plan: Pick<Plan, 'bits' | 'symmetric' | 'granularity' | 'form'>;
  /** Where the float32 values are: a file range (read by the worker) or bytes (transferred). */
  source: { file: string; offset: number; length: number } | { bytes: ArrayBuffer };
}

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'worker.js');


function byteSize(t: TensorProto): number {
  if (t.rawData) return t.rawData.byteLength;
  const len = t.externalData.find((e) => e.key === 'length')?.value;
  return len ? Number(len) : 0;
}

/**
 * Quantizes `targets` (RTN, as `plans` say) on all cores; returns undefined when one thread would do
 * (then the caller quantizes each weight as it goes). `read` gives a weight's floats on this thread.
 */
export async function quantizeParallel(
  targets: readonly Target[],
  plans: ReadonlyMap<Target, Plan>,
  modelFile: string,
  read: (t: TensorProto) => Float32Array,
): Promise<Map<Target, WeightQuant> | undefined> {
  const threads = threadCount();
  const total = targets.reduce((n, t) => n + byteSize(t.site.tensor), 0);
  if (threads < 2 || total < MIN_PARALLEL_BYTES || targets.length < 2 || !existsSync(WORKER)) return undefined;
  // Shares by bytes: the calling thread takes one share, each worker another.
  const shares: Target[][] = Array.from({ length: threads }, () => []);
  const load = new Array<number>(threads).fill(0);
  for (const t of [...targets].sort((a, b) => byteSize(b.site.tensor) - byteSize(a.site.tensor))) {
    const i = load.indexOf(Math.min(...load));
    shares[i].push(t);
    load[i] += byteSize(t.site.tensor);
  }
  const out = new Map<Target, WeightQuant>();
  const jobsFor = (share: Target[]): { jobs: WeightJob[]; transfer: ArrayBuffer[] } => {
    const jobs: WeightJob[] = [];
    const transfer: ArrayBuffer[] = [];
    share.forEach((t) => {
      const tensor = t.site.tensor;
      const plan = plans.get(t)!;
      let source: WeightJob['source'];
      if (tensor.dataLocation === 1 && tensor.dataType === 1) {
        const ref = externalRef(tensor, modelFile);
        checkLocation(ref.location, modelFile);
        source = { file: join(dirname(modelFile), ref.location), offset: ref.offset, length: ref.length ?? 0 };
      } else {
        const w = read(tensor);
        const bytes = new ArrayBuffer(w.byteLength);
        new Float32Array(bytes).set(w);
        source = { bytes };
        transfer.push(bytes);
      }
      jobs.push({
        id: targets.indexOf(t),
        target: { shape: t.shape, channelAxis: t.channelAxis, reduceAxis: t.reduceAxis },
        plan: { bits: plan.bits, symmetric: plan.symmetric, granularity: plan.granularity, form: plan.form },
        source,
      });
    });
    return { jobs, transfer };
  };
  const workers = shares.slice(1).map((share) => {
    const { jobs, transfer } = jobsFor(share);
    const worker = new Worker(WORKER, { workerData: { name: basename(modelFile) } });
    return new Promise<void>((resolve, reject) => {
      let left = jobs.length;
      worker.on('message', (m: { id: number; q?: WeightQuant; error?: string }) => {
        if (m.error) {
          reject(new Error(m.error));
          return void worker.terminate();
        }
        out.set(targets[m.id], m.q!);
        if (--left === 0) {
          resolve();
          void worker.terminate();
        }
      });
      worker.on('error', reject);
      worker.on('exit', (code) => (left > 0 ? reject(new Error(`quantize worker exited with code ${code}`)) : undefined));
      if (left === 0) {
        resolve();
        void worker.terminate();
      } else worker.postMessage(jobs, transfer);
    });
  });
  // This thread's share, while the workers run theirs.
  for (const t of shares[0]) out.set(t, quantizeWeight(t, plans.get(t)!, read(t.site.tensor)));
  await Promise.all(workers);
  return out;
}
