/**
 * Which ops have a gradient rule (ops/*.ts, one file per family) and which never carry one
 * (integer, boolean and shape arithmetic: their outputs are constants to the backward pass).
 */
import type { GradRule } from './types.js';
import { activationRules } from './ops/activations.js';
import { convRules } from './ops/conv.js';
import { elementwiseRules } from './ops/elementwise.js';
import { matmulRules } from './ops/matmul.js';
import { normRules } from './ops/norm.js';
import { poolRules } from './ops/pool.js';
import { reduceRules } from './ops/reduce.js';
import { shapeRules } from './ops/shape.js';
import { softmaxRules } from './ops/softmax.js';

const rules = new Map<string, GradRule>(
  Object.entries({
    ...elementwiseRules,
    ...activationRules,
    ...matmulRules,
    ...normRules,
    ...shapeRules,
    ...convRules,
    ...poolRules,
    ...softmaxRules,
    ...reduceRules,
  }),
);

/** Ops whose outputs are not differentiable functions of their inputs (comparisons, indices, shapes). */
export const NON_DIFFERENTIABLE = new Set([
  'Shape', 'Size', 'Equal', 'Greater', 'GreaterOrEqual', 'Less', 'LessOrEqual', 'Not', 'And', 'Or', 'Xor',
  'NonZero', 'ArgMax', 'ArgMin', 'Range', 'ConstantOfShape', 'Constant', 'OneHot', 'IsNaN', 'IsInf', 'EyeLike',
  'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli',
  // Piecewise constant: zero gradient almost everywhere.
  'Floor', 'Ceil', 'Round', 'Sign',
]);

export function gradRule(opType: string, domain = ''): GradRule | undefined {
  return domain === '' || domain === 'ai.onnx' ? rules.get(opType) : undefined;
}

export function supportedOps(): string[] {
  return [...rules.keys()].sort();
}
