/**
 * The `simplify` recipe block. On by default: a build runs it unless the recipe says `simplify: false`
 * (`true` or a block turns it on with the given keys).
 */
import type { StepConfig } from '../step-config.js';

/** Pass names, in the order one round runs them. */
export const SIMPLIFY_PASSES = ['constants', 'identity', 'fold', 'dead-code', 'dedupe', 'conv-bn', 'gemm', 'layernorm', 'gelu'] as const;
export type SimplifyPassName = (typeof SIMPLIFY_PASSES)[number];

export interface SimplifyStep {
  /** Passes not to run (pass names, not node globs). */
  skip: SimplifyPassName[];
  /** Largest relative output difference accepted from the original (per output, vs its largest magnitude; check.ts allows more where the original's own rounding noise is larger). */
  tolerance: number;
  /** A pass whose result differs more: dropped with a warning, or the build fails. */
  onMismatch: 'drop' | 'error';
}

export const SIMPLIFY_DEFAULTS: SimplifyStep = { skip: [], tolerance: 1e-5, onMismatch: 'drop' };

export const simplifyConfig: StepConfig<SimplifyStep> = {
  name: 'simplify',
  keys: { skip: [], tolerance: 1e-5, onMismatch: 'drop' },
  required: [],
  files: {},
  enabledByDefault: true,
  normalize: (s) => ({
    skip: Array.isArray(s.skip) ? (s.skip as SimplifyPassName[]) : [],
    tolerance: (s.tolerance as number) ?? SIMPLIFY_DEFAULTS.tolerance,
    onMismatch: (s.onMismatch as SimplifyStep['onMismatch']) ?? 'drop',
  }),
};
