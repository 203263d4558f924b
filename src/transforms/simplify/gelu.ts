/**
 * The decomposed GELU exporters write → Gelu (opset ≥ 20).
 *
 * Exact form:  0.5 · x · (1 + erf(x / √2)), with `x / √2` as Div(x, 1.4142…) or Mul(x, 0.7071…) and the
 * three products in any of the orders PyTorch and TF converters emit:
 *   Mul(Mul(x, b), 0.5)   Mul(Mul(x, 0.5), b)   Mul(x, Mul(b, 0.5))        where b = Add(Erf(·), 1)
 * Tanh form (Gelu approximate="tanh"):  0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³))), with x³ as
 * Pow(x, 3) or Mul(x, Mul(x, x)), in the same product orders.
 */
import { GraphIndex, makeAttribute, makeNode, NameScope, opsetVersion } from '../../onnx/graph.js';
import { tensorFloat32 } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto } from '../../onnx/types.js';
import { copyModel, forEachScopeSync, hasOp, isDefaultDomain, scalarOf, soleConsumer, type PassResult, type SimplifyPass } from './pass.js';

const near = (v: number | undefined, want: number, tol = 1e-4) => v !== undefined && Math.abs(v - want) <= tol * Math.abs(want);
const is = (n: NodeProto | undefined, op: string): n is NodeProto => !!n && n.opType === op && isDefaultDomain(n);
const other = (n: NodeProto, name: string) => (n.input[0] === name ? n.input[1] : n.input[0]);

interface Match {
  x: string;
  nodes: NodeProto[];
  output: string;
  approximate: boolean;
}

/** `0.5 · x · b` after b: returns the nodes and the final output, or undefined. */
function halfTimes(idx: GraphIndex, x: string, b: string, scalar: (n: string) => number | undefined): { nodes: NodeProto[]; output: string } | undefined {
  const m1 = soleConsumer(idx, b);
  if (!is(m1, 'Mul')) return undefined;
  const o = other(m1, b);
  if (o === x) {
    const m2 = soleConsumer(idx, m1.output[0]);
    if (is(m2, 'Mul') && near(scalar(other(m2, m1.output[0])), 0.5)) return { nodes: [m1, m2], output: m2.output[0] };
    return undefined;
  }
  if (near(scalar(o), 0.5)) {
    const m2 = soleConsumer(idx, m1.output[0]);
    if (is(m2, 'Mul') && other(m2, m1.output[0]) === x) return { nodes: [m1, m2], output: m2.output[0] };
    return undefined;
  }
  const h = idx.producer.get(o);
  if (is(h, 'Mul') && soleConsumer(idx, o) === m1 && (h.input[0] === x || h.input[1] === x) && near(scalar(other(h, x)), 0.5)) {
    return { nodes: [h, m1], output: m1.output[0] };
  }
  return undefined;
}

/** Rooted at the Erf or Tanh node. */
function match(idx: GraphIndex, f: NodeProto, scalar: (n: string) => number | undefined): Match | undefined {
  const inner = idx.producer.get(f.input[0]);
  if (!inner || soleConsumer(idx, f.input[0]) !== f) return undefined;
  const add1 = soleConsumer(idx, f.output[0]);
  if (!is(add1, 'Add') || !near(scalar(other(add1, f.output[0])), 1)) return undefined;
  let x: string;
  const front: NodeProto[] = [];
  if (f.opType === 'Erf') {
    if (is(inner, 'Div') && near(scalar(inner.input[1]), Math.SQRT2)) x = inner.input[0];
    else if (is(inner, 'Mul') && near(scalar(inner.input[1]), Math.SQRT1_2)) x = inner.input[0];
    else if (is(inner, 'Mul') && near(scalar(inner.input[0]), Math.SQRT1_2)) x = inner.input[1];
    else return undefined;
    front.push(inner);
  } else {
    // inner = Mul(sum, √(2/π)); sum = Add(x, Mul(x³, 0.044715))
    if (!is(inner, 'Mul')) return undefined;
    const k = Math.sqrt(2 / Math.PI);
    const sumName = near(scalar(inner.input[1]), k) ? inner.input[0] : near(scalar(inner.input[0]), k) ? inner.input[1] : undefined;
    const sum = sumName ? idx.producer.get(sumName) : undefined;
    if (!sumName || !is(sum, 'Add') || soleConsumer(idx, sumName) !== inner) return undefined;
    const found = [0, 1].map((i) => {
      const c = idx.producer.get(sum.input[1 - i]);
      const xx = sum.input[i];
      if (!is(c, 'Mul') || soleConsumer(idx, sum.input[1 - i]) !== sum) return undefined;
      const cubeName = near(scalar(c.input[1]), 0.044715) ? c.input[0] : near(scalar(c.input[0]), 0.044715) ? c.input[1] : undefined;
      const cube = cubeName ? idx.producer.get(cubeName) : undefined;
      if (!cubeName || !cube || soleConsumer(idx, cubeName) !== c) return undefined;
      if (is(cube, 'Pow') && cube.input[0] === xx && near(scalar(cube.input[1]), 3)) return { x: xx, nodes: [cube, c] };
      if (is(cube, 'Mul')) {
        const sqName = cube.input[0] === xx ? cube.input[1] : cube.input[1] === xx ? cube.input[0] : undefined;
        const sq = sqName ? idx.producer.get(sqName) : undefined;
        if (sqName && is(sq, 'Mul') && sq.input[0] === xx && sq.input[1] === xx && soleConsumer(idx, sqName) === cube) return { x: xx, nodes: [sq, cube, c] };
      }
      return undefined;
    });
    const hit = found.find(Boolean);
    if (!hit) return undefined;
    x = hit.x;
    front.push(...hit.nodes, sum, inner);
  }
  const tail = halfTimes(idx, x, add1.output[0], scalar);
  if (!tail) return undefined;
  return { x, nodes: [...front, f, add1, ...tail.nodes], output: tail.output, approximate: f.opType === 'Tanh' };
}

export const fuseGelu: SimplifyPass = {
  name: 'gelu',
  run(input: ModelProto): PassResult {
    if ((opsetVersion(input) ?? 1) < 20 || !hasOp(input, ['Erf', 'Tanh'])) return { model: input, changed: 0 };
    const { model } = copyModel(input);
    const names = new NameScope(model);
    let changed = 0;
    forEachScopeSync(model, (g, idx) => {
      const position = new Map(g.node.map((n, i) => [n, i]));
      const scalar = (n: string) => scalarOf(idx, n, tensorFloat32);
      const replaced = new Map<NodeProto, NodeProto | undefined>();
      for (const f of g.node) {
        if (!is(f, 'Erf') && !is(f, 'Tanh')) continue;
        const m = match(idx, f, scalar);
        if (!m || m.nodes.some((n) => replaced.has(n))) continue;
        const gelu = makeNode('Gelu', [m.x], [m.output], {
          name: names.unique(`${f.name || m.output}_gelu`),
          attributes: m.approximate ? [makeAttribute('approximate', 'tanh')] : [],
        });
        // The fused node goes where the pattern's last node was; the rest go.
        const last = m.nodes.reduce((a, b) => (position.get(a)! > position.get(b)! ? a : b));
        for (const n of m.nodes) replaced.set(n, n === last ? gelu : undefined);
      }
      g.node = g.node.flatMap((n) => (replaced.has(n) ? (replaced.get(n) ? [replaced.get(n)!] : []) : [n]));
      changed += replaced.size;
    });
    return changed ? { model, changed } : { model: input, changed: 0 };
  },
};
