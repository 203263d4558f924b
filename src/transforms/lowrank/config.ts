/** The `lowrank` recipe block: parameters, defaults and the checks that point at the recipe. */
import { stringList, type StepConfig } from '../step-config.js';

/** Exactly one of rank / ratio / energy is set. */
export interface LowrankStep {
  rank?: number;
  ratio?: number;
  energy?: number;
  method: 'svd' | 'activation-aware';
  include: string[];
  exclude: string[];
}

const AMOUNTS = ['rank', 'ratio', 'energy'] as const;

export const lowrankConfig: StepConfig<LowrankStep> = {
  name: 'lowrank',
  keys: { rank: undefined, ratio: undefined, energy: undefined, method: 'svd', include: [], exclude: [] },
  required: [],
  files: {},
  normalize(l, { problem }) {
    const set = AMOUNTS.filter((k) => l[k] !== undefined);
    if (set.length === 0) problem(['lowrank'], 'set one of rank, ratio or energy', 'key');
    if (set.length > 1) problem(['lowrank', set[1]], `set only one of rank, ratio or energy (${set.join(' and ')} are set)`, 'key');
    return {
      ...Object.fromEntries(set.map((k) => [k, l[k] as number])),
      method: (l.method as LowrankStep['method']) ?? 'svd',
      include: stringList(l.include),
      exclude: stringList(l.exclude),
    };
  },
};
