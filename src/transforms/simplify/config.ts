/** The `simplify` recipe block: on by default; `simplify: false` turns it off. */

/** Pass names, in the order one round runs them. */
export const SIMPLIFY_PASSES = ['constants', 'identity', 'fold', 'dead-code', 'dedupe', 'conv-bn', 'gemm', 'layernorm', 'gelu'] as const;
export type SimplifyPassName = (typeof SIMPLIFY_PASSES)[number];

export interface SimplifyStep {
  /** Passes not to run. */
  exclude: SimplifyPassName[];
  /** Largest relative output difference accepted from the original (per output, vs its largest magnitude). */
  tolerance: number;
  /** A pass whose result differs more: dropped with a warning, or the build fails. */
  onMismatch: 'drop' | 'error';
}

export const SIMPLIFY_DEFAULTS: SimplifyStep = { exclude: [], tolerance: 1e-5, onMismatch: 'drop' };
