/**
 * The child side of src/runtime/isolate.ts: loads a model in onnxruntime (CPU) and runs it once on the
 * feeds it is sent (or on each of a list of feeds). A native abort or a hang here ends or stalls only this
 * process; the parent turns it into a CompressError for that model. Messages (structured clone): { id,
 * model, feeds, prepacking?, floatActivations?, outputs?, optimization? } in, { id, ok, stage?, message?,
 * outputs?, runs? } out; { prefault: bytes } in asks for memory ahead (prefault).
 */
import os from 'node:os';
import * as ort from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { encodeModelToBytes } from '../onnx/codec.js';
import { DataType } from '../onnx/dtypes.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../onnx/graph.js';
import { makeTensor } from '../onnx/tensor.js';
import { openSession, runSession, trimOrtMessage } from './session.js';
import { PREFAULT_MAX_BYTES } from './child.js';

type Plain = Record<string, { type: string; dims: number[]; data: ort.Tensor['data'] }>;

interface Job {
  id: number;
  model: Uint8Array | string;
  /** A list: run each (a failed run is reported in its place) and send every run's outputs back. */
  feeds: Plain | Plain[];
  prepacking?: boolean;
  floatActivations?: boolean;
  quantizedActivations?: boolean;
  /** Send the outputs back. */
  outputs?: boolean;
  optimization?: 'all' | 'disabled';
}

const tensors = (feeds: Plain) => Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims)]));
const plain = (out: Record<string, ort.Tensor>): Plain => Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { type: t.type, dims: [...t.dims], data: t.data }]));

// The parent went away (exited or was killed): nothing left to answer.
process.on('disconnect', () => process.exit(0));

/**
 * A model like the ones verified (an 8-bit weight dequantized into a MatMul, 4 MB): loading it once
 * when the child starts, while the parent is still reading and compressing, pays onnxruntime's first-
 * session costs (its allocators' first growth, the kernels' first use) off the build's critical path.
 * Measured on the 28 MB int8 output of a 113 MB model: creating its session took 492 ms (median of 7)
 * in a fresh child, 155 ms after this warm-up (which costs the child ~150 ms while it is otherwise idle).
 */
function warmModel(): Uint8Array {
  const k = 2048;
  const weight = makeTensor('w', DataType.INT8, [k, k], new Int8Array(k * k).fill(1));
  const scale = makeTensor('s', DataType.FLOAT, [k], new Float32Array(k).fill(1 / 128));
  const nodes = [makeNode('DequantizeLinear', ['w', 's'], ['wf'], { attributes: [makeAttribute('axis', 1, true)] }), makeNode('MatMul', ['x', 'wf'], ['y'])];
  return encodeModelToBytes(makeModel(makeGraph('warm', nodes, [makeValueInfo('x', DataType.FLOAT, [1, k])], [makeValueInfo('y', DataType.FLOAT, [1, k])], [weight, scale]), 21));
}

const warm = (async () => {
  try {
    const opened = await openSession(warmModel(), { device: 'cpu', prepacking: true });
    await runSession(opened.session, { x: new ort.Tensor('float32', new Float32Array(2048), [1, 2048]) });
    await opened.session.release();
  } catch {
    // only a head start: a failure here changes nothing for the jobs
  }
})();

/**
 * Memory for the coming sessions, faulted in while the child is idle. Where each first touch of a page
 * traps to the hypervisor, creating the session of a 28 MB int8 output took 250–450 ms in a fresh child
 * and 66–70 ms once 128 MB of heap had been touched and freed (malloc keeps it: childEnv's keepHeap).
 * Blocks of 16 MiB come from malloc's heap (below its mmap threshold); gc() frees them at once. At most
 * 128 MiB: the child's idle time is the build's busiest (two cores: reading and compressing beside it),
 * and prefaulting a 378 MB source's size made its whole build slower, not faster (measured: docs/facts.md).
 */
const PREFAULT_BLOCK = 16 * 2 ** 20;
let prefaulted = 0;
function prefault(bytes: number): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  const want = Math.min(bytes, PREFAULT_MAX_BYTES, os.freemem() / 4) - prefaulted;
  if (!gc || !(want > 0)) return;
  const blocks: Buffer[] = [];
  for (let n = 0; n < want; n += PREFAULT_BLOCK) {
    const b = Buffer.allocUnsafeSlow(PREFAULT_BLOCK);
    for (let i = 0; i < b.length; i += 4096) b[i] = 0;
    blocks.push(b);
  }
  prefaulted += blocks.length * PREFAULT_BLOCK;
  blocks.length = 0;
  gc();
}

let ready = warm;
process.on('message', (job: Job | { prefault: number }) => {
  if ('prefault' in job) {
    ready = ready.then(() => prefault(job.prefault));
    return;
  }
  void (async () => {
    await ready;
    let stage = 'load';
    try {
      const opened = await openSession(job.model, { device: 'cpu', prepacking: job.prepacking ?? true, floatActivations: job.floatActivations ?? false, quantizedActivations: job.quantizedActivations, optimization: job.optimization ?? 'all' });
      let outputs: Plain | undefined;
      let runs: ({ outputs: Plain } | { message: string })[] | undefined;
      try {
        stage = 'run';
        if (Array.isArray(job.feeds)) {
          runs = [];
          for (const f of job.feeds) {
            try {
              runs.push({ outputs: plain(await runSession(opened.session, tensors(f))) });
            } catch (e) {
              runs.push({ message: (e as Error | null)?.message ?? String(e) });
            }
          }
        } else {
          const out = await runSession(opened.session, tensors(job.feeds));
          if (job.outputs) outputs = plain(out);
        }
      } finally {
        await opened.session.release();
      }
      process.send!({ id: job.id, ok: true, ...(outputs && { outputs }), ...(runs && { runs }) });
    } catch (e) {
      // onnxruntime's own words (without the temp file's path the parent never showed the user).
      const message = e instanceof CompressError && e.cause !== undefined ? trimOrtMessage(e.cause).replace(/^Load model from .* failed:\s*/, '') : ((e as Error | null)?.message ?? String(e));
      process.send!({ id: job.id, ok: false, stage, message });
    }
  })();
});
