/**
 * `random`: samples synthesized from the model's input types and shapes. Symbolic dims come from
 * `shapes`; a symbolic first dim not given there is 1 (a sample is one call); any other symbolic dim
 * missing from `shapes` is an error naming it. Floats are N(0, 1); integer inputs get small
 * non-negative ints in [0, 100) and bools 0/1, deterministic by seed. Token-id models need real data:
 * random ids say little about accuracy.
 */
import * as ort from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import type { TypedArray } from '../onnx/tensor.js';
import { checkInputBudget } from '../limits.js';
import { seededRandom } from '../random.js';
import { convertArray, fmtDims, product, typeInfo } from './elements.js';
import type { InputSpec, Sample } from './types.js';

/** Samples synthesized for `random` when spec.samples is not given. */
export const DEFAULT_RANDOM_SAMPLES = 16;

const rng = seededRandom;

/** Random samples from the inputs' types and shapes (see the file comment). */
export function randomSamples(inputs: InputSpec[], count: number, seed: number, shapes: Record<string, number>): Sample[] {
  const dimsOf = (spec: InputSpec) =>
    spec.dims.map((d, i) => {
      if (typeof d === 'number') return d;
      const given = shapes[d];
      if (given !== undefined) return given;
      if (i === 0) return 1;
      throw new CompressError(
        'data',
        `random data: input "${spec.name}" has symbolic dim "${d}" (shape ${fmtDims(spec.dims)}): give its size in shapes, e.g. shapes: { ${d === '?' ? '<name>' : d}: 16 }`,
      );
    });
  const plan = inputs.map((spec) => ({ spec, dims: dimsOf(spec), info: typeInfo(spec.type, () => `random data: input "${spec.name}"`) }));
  checkInputBudget(plan.map((p) => ({ name: p.spec.name, type: p.spec.type, dims: p.dims })), 'random data (one sample)');
  const next = rng(seed * 0x9e3779b1 + 1);
  const normal = () => {
    const u = 1 - next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  };
  const samples: Sample[] = [];
  for (let s = 0; s < count; s++) {
    const feeds: Record<string, ort.Tensor> = {};
    for (const { spec, dims, info } of plan) {
      const n = product(dims);
      let data: TypedArray;
      if (info.elem === 'float') {
        const f = new Float32Array(n);
        for (let i = 0; i < n; i++) f[i] = normal();
        data = convertArray(f, 'float32', spec.type);
      } else {
        const hi = info.elem === 'bool' ? 2 : 100;
        const f = new Float64Array(n);
        for (let i = 0; i < n; i++) f[i] = Math.floor(next() * hi);
        data = convertArray(f, 'float64', spec.type);
      }
      feeds[spec.name] = new ort.Tensor(spec.type as 'float32', data as Float32Array, dims);
    }
    samples.push({ feeds });
  }
  return samples;
}
