/**
 * Verification: the compressed model must load and run in onnxruntime, on the first calibration or
 * evaluation sample, else on a synthetic input built from the model's input specs.
 */
import type { Tensor } from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import type { InputSpec, Sample } from '../data/types.js';
import type { ModelProto } from '../onnx/types.js';
import { seededRandom } from '../random.js';
import type { Build } from '../recipe/types.js';
import { displayPath } from './present.js';
import type { Device } from '../device.js';

export type Runtime = typeof import('../runtime/session.js');

/** A deterministic input from the model's input specs: symbolic dims = 1, floats in [0, 1), integers 0. */
export async function syntheticSample(specs: InputSpec[], seed: number): Promise<Sample> {
  const ort = await import('onnxruntime-node');
  const rand = seededRandom(seed >>> 0 || 1);
  const feeds: Record<string, Tensor> = {};
  for (const spec of specs) {
    const dims = spec.dims.map((d) => (typeof d === 'number' && d >= 0 ? d : 1));
    const n = dims.reduce((a, b) => a * b, 1);
    let data: Tensor['data'];
    switch (spec.type) {
      case 'float32':
        data = Float32Array.from({ length: n }, rand);
        break;
      case 'float64':
        data = Float64Array.from({ length: n }, rand);
        break;
      case 'float16':
        data = new Uint16Array(n).fill(0x3800); // 0.5
        break;
      case 'int64':
        data = new BigInt64Array(n);
        break;
      case 'uint64':
        data = new BigUint64Array(n);
        break;
      case 'int32':
        data = new Int32Array(n);
        break;
      case 'uint32':
        data = new Uint32Array(n);
        break;
      case 'int16':
        data = new Int16Array(n);
        break;
      case 'uint16':
        data = new Uint16Array(n);
        break;
      case 'int8':
        data = new Int8Array(n);
        break;
      case 'uint8':
        data = new Uint8Array(n);
        break;
      case 'bool':
        data = new Uint8Array(n);
        break;
      case 'string':
        data = Array.from({ length: n }, () => '');
        break;
      default:
        throw new CompressError('compress', `cannot make a verification input for "${spec.name}" of type ${spec.type}`);
    }
    feeds[spec.name] = new ort.Tensor(spec.type as 'float32', data as Float32Array, dims);
  }
  return { feeds };
}

/** Loads and runs the output; returns the device it ran on. Warnings (a GPU fallback, an unverifiable input) go to `warn`. */
export async function verify(
  rt: Runtime,
  build: Build,
  original: ModelProto,
  bytes: Uint8Array,
  sample: Sample | undefined,
  specs: InputSpec[],
  device: Device,
  seed: number,
  warn: (m: string) => void,
): Promise<string> {
  const input = sample ?? (await syntheticSample(specs, seed));
  const fail = (what: string, e: unknown) => {
    const reason = ((e as Error).message ?? String(e)).replace(/^onnxruntime (cannot load the model|failed to run the model[^:]*): /, '');
    return new CompressError('compress', `${build.id}: the compressed model ${what} in onnxruntime: ${reason}`, { file: displayPath(build.source) }, { cause: e });
  };
  let opened: Awaited<ReturnType<Runtime['openSession']>>;
  try {
    opened = await rt.openSession(bytes, { device });
  } catch (e) {
    // A device problem is not the compression's fault: report it as what it is.
    if (e instanceof CompressError && e.kind === 'runtime' && /GPU|execution provider/i.test(e.message)) throw e;
    throw fail('does not load', e);
  }
  for (const w of opened.warnings) warn(w);
  try {
    await rt.runSession(opened.session, input.feeds);
    return opened.device;
  } catch (e) {
    // Does the source model run on this input? If not, the input is the problem, not the compression.
    let sourceRuns = false;
    try {
      const o = await rt.openSession(original, { device: opened.device === 'cpu' ? 'cpu' : device });
      try {
        await rt.runSession(o.session, input.feeds);
        sourceRuns = true;
      } finally {
        await o.session.release();
      }
    } catch {
      // the source fails too
    }
    if (sourceRuns) throw fail('fails to run', e);
    warn(`could not verify the output: the source model fails on the ${sample ? 'first data sample' : 'synthetic verification input'} too (${(e as Error).message})`);
    return opened.device;
  } finally {
    await opened.session.release();
  }
}
