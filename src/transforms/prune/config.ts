/** The `prune` recipe block: parameters, defaults and the checks that point at the recipe. */
import { stringList, type StepConfig } from '../step-config.js';

export interface PruneStep {
  /** Fraction of weights pruned, 0..1. */
  rate: number;
  method: 'magnitude' | 'activation-aware';
  /** 'N:M': at most N non-zero weights in every M consecutive ones, N < M ≤ 32. */
  structure: 'unstructured' | 'channels' | `${number}:${number}`;
  scope: 'layer' | 'global';
  include: string[];
  exclude: string[];
}

export const pruneConfig: StepConfig<PruneStep> = {
  name: 'prune',
  keys: {
    rate: undefined,
    method: undefined, // activation-aware with calibration data, else magnitude
    structure: 'unstructured',
    scope: 'layer',
    include: [],
    exclude: [],
  },
  required: ['rate'],
  files: {},
  /** `method` defaults to activation-aware when calibration data is given (it keeps far more accuracy:
   * bench/results.md), else to magnitude. */
  normalize(p, { problem, calibration }) {
    const structure = (p.structure as PruneStep['structure']) ?? 'unstructured';
    const nm = /^(\d+):(\d+)$/.exec(structure);
    if (nm) {
      const [n, m] = [Number(nm[1]), Number(nm[2])];
      if (!(n >= 1 && n < m && m <= 32)) problem(['prune', 'structure'], `expected N:M with 1 ≤ N < M ≤ 32, found "${structure}"`);
    }
    return {
      rate: p.rate as number,
      method: (p.method as PruneStep['method']) ?? (calibration !== undefined ? 'activation-aware' : 'magnitude'),
      structure,
      scope: (p.scope as PruneStep['scope']) ?? 'layer',
      include: stringList(p.include),
      exclude: stringList(p.exclude),
    };
  },
};
