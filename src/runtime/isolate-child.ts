/**
 * The child side of src/runtime/isolate.ts: loads a model in onnxruntime (CPU) and runs it once on the
 * feeds it is sent. A native abort or a hang here ends or stalls only this process; the parent turns it
 * into a CompressError for that model. Messages (structured clone): { id, model, feeds, prepacking?,
 * floatActivations?, outputs? } in, { id, ok, stage?, message?, outputs? } out.
 */
import * as ort from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { openSession, runSession, trimOrtMessage } from './session.js';

interface Job {
  id: number;
  model: Uint8Array | string;
  feeds: Record<string, { type: string; dims: number[]; data: ort.Tensor['data'] }>;
  prepacking?: boolean;
  floatActivations?: boolean;
  /** Send the outputs back. */
  outputs?: boolean;
}

// The parent went away (exited or was killed): nothing left to answer.
process.on('disconnect', () => process.exit(0));

process.on('message', (job: Job) => {
  void (async () => {
    let stage = 'load';
    try {
      const opened = await openSession(job.model, { device: 'cpu', prepacking: job.prepacking ?? true, floatActivations: job.floatActivations ?? false });
      let outputs: Record<string, { type: string; dims: number[]; data: ort.Tensor['data'] }> | undefined;
      try {
        stage = 'run';
        const feeds = Object.fromEntries(Object.entries(job.feeds).map(([k, t]) => [k, new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims)]));
        const out = await runSession(opened.session, feeds);
        if (job.outputs) outputs = Object.fromEntries(Object.entries(out).map(([k, t]) => [k, { type: t.type, dims: [...t.dims], data: t.data }]));
      } finally {
        await opened.session.release();
      }
      process.send!({ id: job.id, ok: true, ...(outputs && { outputs }) });
    } catch (e) {
      // onnxruntime's own words (without the temp file's path the parent never showed the user).
      const message = e instanceof CompressError && e.cause !== undefined ? trimOrtMessage(e.cause).replace(/^Load model from .* failed:\s*/, '') : ((e as Error | null)?.message ?? String(e));
      process.send!({ id: job.id, ok: false, stage, message });
    }
  })();
});
