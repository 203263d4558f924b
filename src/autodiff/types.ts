/**
 * A gradient rule: given a forward node and the gradients of its outputs, emit the nodes that compute
 * the gradients of its inputs.
 *
 * - `dy[i]`: the gradient of output i, shaped like that output; undefined when nothing downstream
 *   depends on it (treat as zero).
 * - `wants[i]`: whether input i needs a gradient (it lies on a path from a trainable parameter).
 * - returns one entry per input: the gradient, shaped like that input, or undefined (none / zero).
 */
import type { NodeProto } from '../onnx/types.js';
import type { GradBuilder } from './builder.js';

export type GradRule = (b: GradBuilder, node: NodeProto, dy: (string | undefined)[], wants: boolean[]) => (string | undefined)[];

export type GradRules = Record<string, GradRule>;
