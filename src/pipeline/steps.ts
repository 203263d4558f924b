/**
 * Step implementations, loaded on demand (a cache hit never loads a transform, nor onnxruntime).
 * A step is `src/transforms/<name>/index.ts` exporting `<name>Step(params) → Step`; one that does not exist
 * yet is CompressError('compress', 'step X is not available') — recipe validation normally rejects such
 * recipes first ("not supported yet").
 */
import { CompressError } from '../errors.js';
import type { StepName, Steps } from '../recipe/types.js';
import type { Step } from '../transforms/types.js';

export type StepFactory<K extends StepName> = (params: NonNullable<Steps[K]>) => Step;

const loaded = new Map<StepName, Promise<unknown>>();

/** Test hook: replace a step's implementation (undefined restores the real one). */
const overrides = new Map<StepName, StepFactory<StepName>>();
export function overrideStep<K extends StepName>(name: K, factory: StepFactory<K> | undefined): void {
  if (factory) overrides.set(name, factory as unknown as StepFactory<StepName>);
  else overrides.delete(name);
}

export async function loadStep<K extends StepName>(name: K): Promise<StepFactory<K>> {
  const override = overrides.get(name);
  if (override) return override as unknown as StepFactory<K>;
  // A variable specifier: the module may not exist in this build of the tool.
  const specifier = `../transforms/${name}/index.js`;
  let p = loaded.get(name);
  if (!p) {
    p = import(specifier);
    loaded.set(name, p);
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await p) as Record<string, unknown>;
  } catch (e) {
    loaded.delete(name);
    const err = e as NodeJS.ErrnoException;
    const missing =
      (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND' || /Cannot find module|Failed to load url|Does the file exist/i.test(err.message ?? '')) &&
      (err.message ?? '').includes(`transforms/${name}/`);
    if (missing) throw new CompressError('compress', `step ${name} is not available`);
    throw e;
  }
  const factory = mod[`${name}Step`];
  if (typeof factory !== 'function') throw new CompressError('compress', `step ${name} is not available`);
  return factory as StepFactory<K>;
}
