/**
 * Arithmetic with numpy broadcasting: each operand's gradient is summed back to its own shape
 * (GradBuilder.unbroadcast). y is the node's output, g its gradient.
 *
 *   Add  dA = g            dB = g
 *   Sub  dA = g            dB = −g
 *   Mul  dA = g·B          dB = g·A
 *   Div  dA = g/B          dB = −g·y/B
 *   Pow  dA = g·B·A^(B−1)  dB = g·y·ln A
 *   Where(c, A, B)  dA = c ? g : 0   dB = c ? 0 : g
 *   Max/Min  each input where it equals y (ties: every tied input)
 */
import { dataTypeFromName } from '../../onnx/dtypes.js';
import { aInt, type GradBuilder } from '../builder.js';
import type { GradRule, GradRules } from '../types.js';

/** Gradient rule for a binary op: `parts` gives each operand's unreduced gradient. */
function binary(parts: (b: GradBuilder, g: string, a: string, bIn: string, y: string, wants: boolean[]) => [(() => string) | undefined, (() => string) | undefined]): GradRule {
  return (b, node, [g], wants) => {
    if (!g) return [];
    const [a, c] = node.input;
    const y = node.output[0];
    const [da, db] = parts(b, g, a, c, y, wants);
    return [wants[0] && da ? b.unbroadcast(da(), y, a) : undefined, wants[1] && db ? b.unbroadcast(db(), y, c) : undefined];
  };
}

/** Gradient rule for y = f(x): dx = g · f'(x), with f' built from x and y. */
export function unary(derivative: (b: GradBuilder, x: string, y: string, g: string) => string): GradRule {
  return (b, node, [g], wants) => (g && wants[0] ? [derivative(b, node.input[0], node.output[0], g)] : []);
}

const passThrough: GradRule = (_b, _node, [g]) => [g];

/** Max / Min: the gradient flows to every input equal to the result. */
const selectEqual: GradRule = (b, node, [g], wants) => {
  if (!g) return [];
  const y = node.output[0];
  const zero = b.scalar(0);
  return node.input.map((x, i) => (wants[i] ? b.unbroadcast(b.op('Where', [b.op('Equal', [x, y]), g, zero]), y, x) : undefined));
};

export const elementwiseRules: GradRules = {
  Add: binary((_b, g) => [() => g, () => g]),
  Sub: binary((b, g) => [() => g, () => b.op('Neg', [g])]),
  Mul: binary((b, g, a, c) => [() => b.op('Mul', [g, c]), () => b.op('Mul', [g, a])]),
  Div: binary((b, g, _a, c, y) => [() => b.op('Div', [g, c]), () => b.op('Neg', [b.op('Div', [b.op('Mul', [g, y]), c])])]),
  Pow: binary((b, g, a, c, y) => [
    () => {
      // The exponent may be an integer tensor: compute in the float type.
      const e = b.op('Cast', [c], [aInt('to', b.floatType)]);
      return b.op('Mul', [g, b.op('Mul', [e, b.op('Pow', [a, b.op('Sub', [e, b.scalar(1)])])])]);
    },
    () => b.op('Mul', [g, b.op('Mul', [y, b.op('Log', [a])])]),
  ]),
  Sum: (b, node, [g], wants) => (g ? node.input.map((x, i) => (wants[i] ? b.unbroadcast(g, node.output[0], x) : undefined)) : []),
  Max: selectEqual,
  Min: selectEqual,
  Where: (b, node, [g], wants) => {
    if (!g) return [];
    const [c, x, z] = node.input;
    const y = node.output[0];
    const zero = b.scalar(0);
    return [
      undefined,
      wants[1] ? b.unbroadcast(b.op('Where', [c, g, zero]), y, x) : undefined,
      wants[2] ? b.unbroadcast(b.op('Where', [c, zero, g]), y, z) : undefined,
    ];
  },
  Neg: unary((b, _x, _y, g) => b.op('Neg', [g])),
  Exp: unary((b, _x, y, g) => b.op('Mul', [g, y])),
  Log: unary((b, x, _y, g) => b.op('Div', [g, x])),
  Sqrt: unary((b, _x, y, g) => b.op('Div', [g, b.op('Mul', [y, b.scalar(2)])])),
  Reciprocal: unary((b, _x, y, g) => b.op('Neg', [b.op('Mul', [g, b.op('Mul', [y, y])])])),
  Abs: unary((b, x, _y, g) => b.op('Mul', [g, b.op('Sign', [x])])),
  // y = clip(x): the gradient passes where clipping left x unchanged.
  Clip: unary((b, x, y, g) => b.op('Where', [b.op('Equal', [x, y]), g, b.scalar(0)])),
  Identity: passThrough,
  // Inference-mode Dropout is the identity (its mask output is boolean, so never differentiated).
  Dropout: passThrough,
  Cast: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const from = b.shapes.get(node.input[0])?.type;
    const to = from ? dataTypeFromName(from) : b.floatType;
    return [b.op('Cast', [g], [aInt('to', to ?? b.floatType)])];
  },
};
