/**
 * A JS module (`.js`, `.mjs`, `.cjs`) whose default export (or `samples` export) is an array, an
 * iterable, an async iterable, or a function (possibly async) returning one. Items are
 * `{ inputs: {name: typed array | nested array | {dtype, dims, data} | ort.Tensor}, label? }`. A bare
 * typed array takes the model's input shape, with a symbolic first dim of 1 and at most one other
 * symbolic dim inferred from its length. `.ts`/`.mts`/`.cts` modules load only when the current loader
 * compiles TypeScript (tsx, vitest); plain Node refuses them with a clear error.
 */
import { pathToFileURL } from 'node:url';
import { CompressError } from '../errors.js';
import type { InputSpec, ReadOptions, Sample } from './types.js';
import { fail, pickLabel, sampleFromObject, type Where } from './values.js';

export async function readModule(file: string, inputs: InputSpec[], { limit, labelKey }: ReadOptions): Promise<Sample[]> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?ts$/.test(file)) {
      throw new CompressError('data', 'cannot import a TypeScript data module: this Node loader does not compile TypeScript (run under tsx, or use a .js/.mjs module)', { file });
    }
    throw new CompressError('data', `cannot import the data module: ${(e as Error).message}`, { file }, { cause: e });
  }
  let src: unknown = mod.default ?? mod.samples;
  if (src === undefined) throw new CompressError('data', 'the module has no default export (or "samples" export) of samples', { file });
  if (typeof src === 'function') {
    try {
      src = await (src as () => unknown)();
    } catch (e) {
      throw new CompressError('data', `the module's sample function threw: ${(e as Error).message}`, { file }, { cause: e });
    }
  }
  const iterable = src as Partial<AsyncIterable<unknown> & Iterable<unknown>> | null;
  if (!iterable || (typeof iterable[Symbol.iterator] !== 'function' && typeof iterable[Symbol.asyncIterator] !== 'function')) {
    throw new CompressError('data', 'the default export must be an array, an iterable or an async iterable of samples, or a function returning one', { file });
  }
  const samples: Sample[] = [];
  if (limit <= 0) return samples;
  for await (const item of iterable as AsyncIterable<unknown>) {
    const w: Where = { file, sample: samples.length + 1 };
    if (!item || typeof item !== 'object' || !('inputs' in item)) fail(w, `a sample must be an object {inputs: {…}, label?}`);
    const o = item as Record<string, unknown>;
    samples.push({ feeds: sampleFromObject(o.inputs, inputs, w), label: pickLabel(o, labelKey) });
    if (samples.length >= limit) break;
  }
  return samples;
}
