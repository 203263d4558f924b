/**
 * What the recipe format describes but the compressor cannot do yet. A recipe that uses any of these is
 * rejected with "not supported yet" at the key's position, so nothing in a recipe is ever silently ignored.
 * Remove an entry when its feature lands.
 */
export interface UnsupportedFeature {
  /**
   * A key path inside a model, a variant or `defaults` (`distill`, `budget.minCosine`), optionally with
   * `=value` to reject only that value (`quantize.method=gptq`).
   */
  path: string;
  /** Shown after the message, e.g. a workaround. */
  reason?: string;
}

export const unsupportedFeatures: UnsupportedFeature[] = [];

/** File types a `data` path may name (a folder is accepted too): the loader's own list, so the two cannot disagree. */
export { dataExtensions } from '../data/formats.js';
