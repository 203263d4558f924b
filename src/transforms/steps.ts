/** The normalized parameters of every step, by name: a build's `steps` holds the ones its recipe sets. */
import type { DistillStep } from './distill/config.js';
import type { LowrankStep } from './lowrank/config.js';
import type { PruneStep } from './prune/config.js';
import type { QuantizeStep } from './quantize/config.js';
import type { SimplifyStep } from './simplify/config.js';

export interface Steps {
  simplify?: SimplifyStep;
  prune?: PruneStep;
  lowrank?: LowrankStep;
  distill?: DistillStep;
  quantize?: QuantizeStep;
}

export type StepName = keyof Steps;
export type StepParams<K extends StepName> = NonNullable<Steps[K]>;
