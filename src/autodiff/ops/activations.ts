/**
 * Pointwise activations, dx = g · f'(x), written with standard ops (no ReluGrad / GeluGrad: the
 * inference build of onnxruntime lacks them). y is the output.
 *
 *   Relu       x > 0 ? g : 0                 LeakyRelu  x > 0 ? g : α·g
 *   Elu        x > 0 ? g : g·(y + α)         PRelu      dx = x > 0 ? g : g·slope, dslope = x > 0 ? 0 : g·x
 *   Tanh       g·(1 − y²)                    Sigmoid    g·y·(1 − y)
 *   Softplus   g·σ(x)                        Erf        g·2/√π·e^(−x²)
 *   Gelu       g·(Φ(x) + x·φ(x)); tanh form: g·(½(1+t) + ½x(1−t²)·√(2/π)(1 + 3·0.044715x²)), t = tanh(√(2/π)(x + 0.044715x³))
 */
import { attrFloat, attribute } from '../../onnx/graph.js';
import type { GradRules } from '../types.js';
import { unary } from './elementwise.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

export const activationRules: GradRules = {
  Relu: unary((b, x, _y, g) => b.op('Where', [b.op('Greater', [x, b.scalar(0)]), g, b.scalar(0)])),
  LeakyRelu: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const alpha = attrFloat(node, 'alpha', 0.01);
    return [b.op('Where', [b.op('Greater', [node.input[0], b.scalar(0)]), g, b.op('Mul', [g, b.scalar(alpha)])])];
  },
  Elu: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const alpha = attrFloat(node, 'alpha', 1);
    const slope = b.op('Mul', [g, b.op('Add', [node.output[0], b.scalar(alpha)])]);
    return [b.op('Where', [b.op('Greater', [node.input[0], b.scalar(0)]), g, slope])];
  },
  PRelu: (b, node, [g], wants) => {
    if (!g) return [];
    const [x, slope] = node.input;
    const y = node.output[0];
    const positive = b.op('Greater', [x, b.scalar(0)]);
    const zero = b.scalar(0);
    return [
      wants[0] ? b.op('Where', [positive, g, b.op('Mul', [g, slope])]) : undefined,
      wants[1] ? b.unbroadcast(b.op('Where', [positive, zero, b.op('Mul', [g, x])]), y, slope) : undefined,
    ];
  },
  Tanh: unary((b, _x, y, g) => b.op('Mul', [g, b.op('Sub', [b.scalar(1), b.op('Mul', [y, y])])])),
  Sigmoid: unary((b, _x, y, g) => b.op('Mul', [g, b.op('Mul', [y, b.op('Sub', [b.scalar(1), y])])])),
  Softplus: unary((b, x, _y, g) => b.op('Mul', [g, b.op('Sigmoid', [x])])),
  Erf: unary((b, x, _y, g) => {
    const gauss = b.op('Exp', [b.op('Neg', [b.op('Mul', [x, x])])]);
    return b.op('Mul', [g, b.op('Mul', [gauss, b.scalar(2 / Math.sqrt(Math.PI))])]);
  }),
  Gelu: (b, node, [g], wants) => {
    if (!g || !wants[0]) return [];
    const x = node.input[0];
    const s = attribute(node, 'approximate')?.s;
    const tanhForm = s !== undefined && Buffer.from(s).toString('utf8') === 'tanh';
    const x2 = b.op('Mul', [x, x]);
    let d: string;
    if (tanhForm) {
      const inner = b.op('Mul', [b.scalar(SQRT_2_OVER_PI), b.op('Add', [x, b.op('Mul', [b.scalar(0.044715), b.op('Mul', [x2, x])])])]);
      const t = b.op('Tanh', [inner]);
      const left = b.op('Mul', [b.scalar(0.5), b.op('Add', [b.scalar(1), t])]);
      const sech2 = b.op('Sub', [b.scalar(1), b.op('Mul', [t, t])]);
      const dInner = b.op('Mul', [b.scalar(SQRT_2_OVER_PI), b.op('Add', [b.scalar(1), b.op('Mul', [b.scalar(3 * 0.044715), x2])])]);
      d = b.op('Add', [left, b.op('Mul', [b.op('Mul', [b.scalar(0.5), x]), b.op('Mul', [sech2, dInner])])]);
    } else {
      const cdf = b.op('Mul', [b.scalar(0.5), b.op('Add', [b.scalar(1), b.op('Erf', [b.op('Mul', [x, b.scalar(Math.SQRT1_2)])])])]);
      const pdf = b.op('Mul', [b.scalar(1 / Math.sqrt(2 * Math.PI)), b.op('Exp', [b.op('Mul', [x2, b.scalar(-0.5)])])]);
      d = b.op('Add', [cdf, b.op('Mul', [x, pdf])]);
    }
    return [b.op('Mul', [g, d])];
  },
};
