/**
 * Whose fault a native crash is. When onnxruntime crashes, hangs or runs out of memory on the compressed
 * model in the isolated child (src/runtime/isolate.ts), the source is run the same way on the same input:
 * if it fails too, the input model is at fault (exit 2, "the source model …"); if it runs, the compression
 * produced a model onnxruntime cannot take (exit 1). A build with steps has probed its source before them,
 * so this second probe matters most for builds without steps, whose output is the source re-encoded.
 */
import type { Tensor } from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { probeIsolated } from '../runtime/isolate.js';
import type { Build } from '../recipe/types.js';
import { displayPath } from './present.js';

const NATIVE = /^onnxruntime (crashed|timed out|used more than)/;

/** `e` from the isolated probe of the compressed model, as the error that blames the right model. */
export async function blameNativeFailure(e: unknown, build: Build, feeds: Record<string, Tensor>): Promise<never> {
  const file = displayPath(build.source);
  const reason = e instanceof CompressError && e.kind === 'runtime' ? e.message.slice(e.location.file ? `${e.location.file}: `.length : 0) : undefined;
  if (!reason || !NATIVE.test(reason)) throw e;
  try {
    await probeIsolated(build.source, feeds, { file, phase: 'verify, on the source model', prepacking: false });
  } catch (s) {
    if (s instanceof CompressError && s.kind === 'runtime') throw new CompressError('model', `${build.id}: ${s.message.slice(`${file}: `.length)}`, { file }, { cause: e });
    throw s;
  }
  throw new CompressError('compress', `${build.id}: ${reason.replace(/ on the model /, ' on the compressed model ')}; the source model runs`, { file }, { cause: e });
}
