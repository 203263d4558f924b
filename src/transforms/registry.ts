/**
 * Every compression step, in the order a build runs them. Each entry pairs the step's recipe config
 * (dependency-free: reading a recipe loads no transform) with a loader whose import specifier is a
 * literal, so readers, bundlers and type checkers see every step, and a cache hit loads no transform
 * and no onnxruntime. Adding a step: docs/architecture.md, "How to add a step".
 */
import { distillConfig } from './distill/config.js';
import { lowrankConfig } from './lowrank/config.js';
import { pruneConfig } from './prune/config.js';
import { quantizeConfig } from './quantize/config.js';
import { simplifyConfig } from './simplify/config.js';
import type { StepConfig } from './step-config.js';
import type { StepName, StepParams, Steps } from './steps.js';
import type { Step } from './types.js';

export type { StepName, StepParams, Steps };

export type StepFactory<K extends StepName> = (params: StepParams<K>) => Step;

export interface StepEntry<K extends StepName> {
  name: K;
  config: StepConfig<StepParams<K>>;
  load(): Promise<StepFactory<K>>;
}

type AnyEntry = { [K in StepName]: StepEntry<K> }[StepName];

/**
 * In run order: simplify first (the others see fewer nodes and plain weights), then prune (it scores the
 * original weights), quantize last (it changes their type).
 */
export const STEP_REGISTRY: readonly AnyEntry[] = [
  { name: 'simplify', config: simplifyConfig, load: async () => (await import('./simplify/index.js')).simplifyStep },
  { name: 'prune', config: pruneConfig, load: async () => (await import('./prune/index.js')).pruneStep },
  { name: 'lowrank', config: lowrankConfig, load: async () => (await import('./lowrank/index.js')).lowrankStep },
  { name: 'distill', config: distillConfig, load: async () => (await import('./distill/index.js')).distillStep },
  { name: 'quantize', config: quantizeConfig, load: async () => (await import('./quantize/index.js')).quantizeStep },
];

export const STEP_ORDER: readonly StepName[] = STEP_REGISTRY.map((s) => s.name);

export function stepEntry<K extends StepName>(name: K): StepEntry<K> {
  const entry = STEP_REGISTRY.find((s) => s.name === name);
  if (!entry) throw new Error(`no step named ${name}`);
  return entry as unknown as StepEntry<K>;
}

/** The steps a build runs, in order, each with its parameters. */
export function stepsOf(steps: Steps): { name: StepName; params: StepParams<StepName> }[] {
  return STEP_REGISTRY.filter((s) => steps[s.name] !== undefined).map((s) => ({ name: s.name, params: steps[s.name]! }));
}

/** Test hook: replace a step's implementation (undefined restores the real one). */
const overrides = new Map<StepName, StepFactory<StepName>>();
export function overrideStep<K extends StepName>(name: K, factory: StepFactory<K> | undefined): void {
  if (factory) overrides.set(name, factory as unknown as StepFactory<StepName>);
  else overrides.delete(name);
}

/** Whether a step runs its built-in implementation (a stand-in may not know the pipeline's lazy reads). */
export function isBuiltIn(name: StepName): boolean {
  return !overrides.has(name);
}

/** The step's implementation (its module is imported once, on first use). */
export async function loadStep<K extends StepName>(name: K): Promise<StepFactory<K>> {
  const override = overrides.get(name);
  if (override) return override as unknown as StepFactory<K>;
  return stepEntry(name).load();
}
