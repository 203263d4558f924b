/**
 * The teacher's logits, computed once per training sample and kept (the teacher never changes):
 * every later step reads rows from this cache instead of running the teacher again. The teacher is
 * `original` (the uncompressed source) or any model with the same inputs and output meaning — a
 * bigger model, another architecture.
 */
import type * as ort from 'onnxruntime-node';
import { CompressError } from '../../errors.js';
import { stackSamples } from '../../data/batch.js';
import type { Sample } from '../../data/types.js';
import type { ModelProto } from '../../onnx/types.js';
import { inputSpecs, openSession, outputNames, runSession, type DeviceRequest } from '../../runtime/session.js';

export interface TeacherOptions {
  device?: DeviceRequest;
  intraOpThreads?: number;
  /** Output holding the logits (default: the first output). */
  output?: string;
  /** Samples per run (default 64). */
  batch?: number;
}

export class TeacherLogits {
  private constructor(
    /** One row block per sample (the sample's logits, all axes flattened). */
    readonly rows: Float32Array[],
    /** Dims of one sample's logits. */
    readonly dims: number[],
  ) {}

  get classes(): number {
    return this.dims[this.dims.length - 1];
  }

  /** The rows of `indices`, concatenated (the order a stacked batch of those samples has). */
  batch(indices: readonly number[]): Float32Array {
    const per = this.rows[0].length;
    const out = new Float32Array(indices.length * per);
    indices.forEach((s, i) => out.set(this.rows[s], i * per));
    return out;
  }

  static async compute(teacher: ModelProto, samples: Sample[], opts: TeacherOptions = {}): Promise<TeacherLogits> {
    if (samples.length === 0) throw new CompressError('data', 'distill: no training samples');
    const output = opts.output ?? outputNames(teacher)[0];
    const specs = inputSpecs(teacher);
    const { session } = await openSession(teacher, { device: opts.device, intraOpThreads: opts.intraOpThreads });
    const rows: Float32Array[] = [];
    let dims: number[] = [];
    const batch = opts.batch ?? 64;
    try {
      for (let i = 0; i < samples.length; i += batch) {
        const chunk = samples.slice(i, i + batch);
        const stacked = chunk.length > 1 ? stackSamples(chunk, specs) : undefined;
        const runs: { feeds: Record<string, ort.Tensor>; count: number }[] = stacked
          ? [{ feeds: stacked.feeds, count: chunk.length }]
          : chunk.map((s) => ({ feeds: s.feeds, count: 1 }));
        for (const { feeds, count } of runs) {
          const y = (await runSession(session, feeds, [output]))[output];
          const data = Float32Array.from(y.data as Float32Array);
          const per = data.length / count;
          if (rows.length === 0) dims = [...y.dims.slice(1)];
          for (let j = 0; j < count; j++) rows.push(data.slice(j * per, (j + 1) * per));
        }
      }
    } finally {
      await session.release();
    }
    return new TeacherLogits(rows, dims);
  }
}
