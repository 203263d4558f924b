/**
 * A JS module (`.js`, `.mjs`, `.cjs`) whose default export (or `samples` export) is an array, an
 * iterable, an async iterable, or a function (possibly async) returning one. Items are
 * `{ inputs: {name: typed array | nested array | {dtype, dims, data} | ort.Tensor}, label? }`. A bare
 * typed array takes the model's input shape, with a symbolic first dim of 1 and at most one other
 * symbolic dim inferred from its length. `.ts`/`.mts`/`.cts` modules load only when the current loader
 * compiles TypeScript (tsx, vitest); plain Node refuses them with a clear error.
 */
import { pathToFileURL } from 'node:url';
import { activeDataModules, loadedDataModules } from '../activity.js';
import { CompressError } from '../errors.js';
import { describeThrown, limit as limitOf, overLimit } from '../limits.js';
import type { InputSpec, ReadOptions, Sample } from './types.js';
import { fail, pickLabel, sampleFromObject, type Where } from './values.js';

export async function readModule(file: string, inputs: InputSpec[], opts: ReadOptions): Promise<Sample[]> {
  activeDataModules.add(file); // a stray rejection while it runs is attributed to it
  loadedDataModules.add(file);
  try {
    return await readGuarded(file, inputs, opts);
  } finally {
    activeDataModules.delete(file);
  }
}

/**
 * A module is user code: whatever it throws (null, a string, a getter that throws), rejects or never
 * settles becomes a CompressError('data') naming the file and the sample; each step has a deadline, and
 * without `samples` at most the SAMPLES limit of items is taken.
 */
async function readGuarded(file: string, inputs: InputSpec[], { limit, labelKey }: ReadOptions): Promise<Sample[]> {
  const thrown = (what: string, e: unknown, sample?: number) =>
    e instanceof CompressError ? e : new CompressError('data', `${sample ? `sample ${sample}: ` : ''}${what}: ${describeThrown(e)}`, { file }, { cause: e });
  let mod: Record<string, unknown>;
  try {
    mod = (await deadline(import(pathToFileURL(file).href), file, 'importing the data module')) as Record<string, unknown>;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException | null)?.code;
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && /\.[cm]?ts$/.test(file)) {
      throw new CompressError('data', 'cannot import a TypeScript data module: this Node loader does not compile TypeScript (run under tsx, or use a .js/.mjs module)', { file });
    }
    throw thrown('cannot import the data module', e);
  }
  let iterator: { next(): unknown; return?(): unknown };
  try {
    let src: unknown = mod.default ?? mod.samples;
    if (src === undefined) throw new CompressError('data', 'the module has no default export (or "samples" export) of samples', { file });
    if (typeof src === 'function') {
      const fn = src as () => unknown;
      src = await deadline(Promise.resolve().then(fn), file, "the module's sample function");
    }
    const iterable = src as Partial<AsyncIterable<unknown> & Iterable<unknown>> | null;
    const makeAsync = iterable?.[Symbol.asyncIterator];
    const makeSync = iterable?.[Symbol.iterator];
    if (typeof makeAsync !== 'function' && typeof makeSync !== 'function') {
      throw new CompressError('data', 'the default export must be an array, an iterable or an async iterable of samples, or a function returning one', { file });
    }
    iterator = (typeof makeAsync === 'function' ? makeAsync.call(iterable) : makeSync!.call(iterable)) as typeof iterator;
  } catch (e) {
    throw thrown("the module's sample function threw", e);
  }
  const samples: Sample[] = [];
  if (limit <= 0) return samples;
  const cap = limitOf('SAMPLES');
  try {
    for (;;) {
      const w: Where = { file, sample: samples.length + 1 };
      let r: IteratorResult<unknown>;
      try {
        // A sync iterator's next() cannot leave anything pending: no deadline (and no timer) per item.
        const next = iterator.next();
        r = (isThenable(next) ? await deadline(Promise.resolve(next), file, `producing sample ${w.sample}`) : next) as IteratorResult<unknown>;
        if (!r || typeof r !== 'object') fail(w, 'the iterator returned a non-object from next()');
        if (r.done) break;
      } catch (e) {
        throw thrown("the module's iterator threw", e, w.sample);
      }
      if (samples.length >= cap) throw overLimit('data', 'SAMPLES', `the data module yields more than ${cap} samples: set samples to take fewer`, { file });
      try {
        const item = r.value;
        if (!item || typeof item !== 'object' || !('inputs' in item)) fail(w, `a sample must be an object {inputs: {…}, label?}`);
        const o = item as Record<string, unknown>;
        samples.push({ feeds: sampleFromObject(o.inputs, inputs, w), label: pickLabel(o, labelKey, w) });
      } catch (e) {
        throw thrown('reading the sample threw', e, w.sample);
      }
      if (samples.length >= limit) break;
    }
  } finally {
    try {
      void Promise.resolve(iterator.return?.()).catch(() => {}); // let a generator clean up; its errors are not ours
    } catch {
      // a throwing return() changes nothing for the samples read
    }
  }
  return samples;
}

const isThenable = (v: unknown): v is PromiseLike<unknown> => typeof (v as { then?: unknown } | null)?.then === 'function';

/** `p`, or a CompressError once the DATA_MODULE_MS limit passes (the timer does not keep the process alive). */
function deadline<T>(p: Promise<T>, file: string, what: string): Promise<T> {
  const ms = limitOf('DATA_MODULE_MS');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(overLimit('data', 'DATA_MODULE_MS', `${what} did not finish in ${ms} ms`, { file })), ms);
    timer.unref();
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
