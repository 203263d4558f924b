/** Batching: many samples as one model call. */
import * as ort from 'onnxruntime-node';
import type { TypedArray } from '../onnx/tensor.js';
import { product } from './elements.js';
import type { InputSpec, Sample } from './types.js';

/**
 * One feed holding all samples, concatenated along axis 0 — when every input's first dim is symbolic
 * and the samples agree on type and all other dims. Labels are dropped (keep them from the samples).
 * Returns undefined when the samples cannot be stacked.
 */
export function stackSamples(samples: Sample[], inputs: InputSpec[]): Sample | undefined {
  if (samples.length === 0) return undefined;
  if (samples.length === 1) return { feeds: samples[0].feeds };
  const feeds: Record<string, ort.Tensor> = {};
  for (const spec of inputs) {
    if (spec.dims.length === 0 || typeof spec.dims[0] === 'number') return undefined;
    const first = samples[0].feeds[spec.name];
    if (!first || first.dims.length === 0 || first.type === 'string') return undefined;
    const tail = first.dims.slice(1);
    let rows = 0;
    for (const s of samples) {
      const t = s.feeds[spec.name];
      if (!t || t.type !== first.type || t.dims.length !== first.dims.length) return undefined;
      for (let i = 1; i < t.dims.length; i++) if (t.dims[i] !== first.dims[i]) return undefined;
      rows += t.dims[0];
    }
    const firstData = first.data as TypedArray;
    const Ctor = firstData.constructor as new (n: number) => TypedArray;
    const per = product(tail);
    const out = new Ctor(rows * per);
    let at = 0;
    for (const s of samples) {
      const d = s.feeds[spec.name].data as TypedArray;
      (out as Float32Array).set(d as Float32Array, at);
      at += d.length;
    }
    feeds[spec.name] = new ort.Tensor(first.type as 'float32', out as Float32Array, [rows, ...tail]);
  }
  return { feeds };
}
