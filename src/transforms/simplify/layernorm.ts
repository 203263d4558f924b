/**
 * The decomposed layer normalization exporters write (opset < 17 exports, TF and Keras converters) →
 * LayerNormalization (opset ≥ 17), over the last axis:
 *
 *   mean = ReduceMean(x, [-1]);  d = Sub(x, mean);  var = ReduceMean(Pow(d, 2) | Mul(d, d), [-1])
 *   y = Div(d, Sqrt(Add(var, eps)));  [y = Mul(y, gamma)];  [y = Add(y, beta)]
 *
 * gamma and beta must be 1-D constants; without a Mul, gamma is a new tensor of ones (its length from
 * beta or from x's static last dim). Every intermediate must have no other reader.
 */
import { DataType } from '../../onnx/dtypes.js';
import { attrInt, attrInts, GraphIndex, makeAttribute, makeNode, NameScope, opsetVersion } from '../../onnx/graph.js';
import { dimsOf, makeTensor, tensorFloat32, tensorValues } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';
import { constantOf, copyModel, forEachScopeSync, hasOp, isDefaultDomain, scalarOf, soleConsumer, type PassResult, type SimplifyPass } from './pass.js';
import { inferShapes, type Shape } from './shapes.js';

const is = (n: NodeProto | undefined, op: string): n is NodeProto => !!n && n.opType === op && isDefaultDomain(n);

/** The other input of a binary node, given one of them. */
const other = (n: NodeProto, name: string) => (n.input[0] === name ? n.input[1] : n.input[0]);

interface Match {
  x: string;
  eps: number;
  gamma?: string;
  beta?: string;
  nodes: NodeProto[];
  output: string;
}

function lastAxisMean(idx: GraphIndex, n: NodeProto, opset: number, rank: number | undefined): boolean {
  if (!is(n, 'ReduceMean') || attrInt(n, 'keepdims', 1) !== 1) return false;
  let axes: number[] | undefined;
  if (opset >= 18) {
    const t = constantOf(idx, n.input[1]);
    axes = t ? Array.from(tensorValues(t) as BigInt64Array, Number) : undefined;
  } else axes = attrInts(n, 'axes');
  return !!axes && axes.length === 1 && (axes[0] === -1 || (rank !== undefined && axes[0] === rank - 1));
}

function match(idx: GraphIndex, div: NodeProto, opset: number, shapes: Map<string, Shape>): Match | undefined {
  const [d, s] = div.input;
  const sub = idx.producer.get(d);
  const sqrt = idx.producer.get(s);
  if (!is(sub, 'Sub') || !is(sqrt, 'Sqrt') || soleConsumer(idx, s) !== div) return undefined;
  const [x, m] = sub.input;
  const rank = shapes.get(x)?.length;
  const mean = idx.producer.get(m);
  if (!mean || mean.input[0] !== x || soleConsumer(idx, m) !== sub || !lastAxisMean(idx, mean, opset, rank)) return undefined;
  const add = idx.producer.get(sqrt.input[0]);
  if (!is(add, 'Add') || soleConsumer(idx, sqrt.input[0]) !== sqrt) return undefined;
  const variance = idx.producer.get(add.input[0]) ?? idx.producer.get(add.input[1]);
  if (!variance || soleConsumer(idx, variance.output[0]) !== add || !lastAxisMean(idx, variance, opset, rank)) return undefined;
  const eps = scalarOf(idx, other(add, variance.output[0]), tensorFloat32);
  const sq = idx.producer.get(variance.input[0]);
  if (eps === undefined || !sq || soleConsumer(idx, variance.input[0]) !== variance) return undefined;
  const squares =
    isDefaultDomain(sq) && sq.input[0] === d && (sq.opType === 'Mul' ? sq.input[1] === d : sq.opType === 'Pow' && scalarOf(idx, sq.input[1], tensorFloat32) === 2);
  const dReaders = new Set(idx.consumersOf(d));
  if (!squares || idx.isGraphOutput(d) || dReaders.size !== 2 || !dReaders.has(div) || !dReaders.has(sq)) return undefined;

  const nodes = [mean, sub, sq, variance, add, sqrt, div];
  let output = div.output[0];
  let gamma: string | undefined;
  let beta: string | undefined;
  const oneD = (name: string) => {
    const t = constantOf(idx, name);
    return t && t.dims.length === 1 ? t : undefined;
  };
  let next = soleConsumer(idx, output);
  if (is(next, 'Mul') && oneD(other(next, output))) {
    gamma = other(next, output);
    nodes.push(next);
    output = next.output[0];
    next = soleConsumer(idx, output);
  }
  if (is(next, 'Add') && oneD(other(next, output))) {
    beta = other(next, output);
    nodes.push(next);
    output = next.output[0];
  }
  return { x, eps, gamma, beta, nodes, output };
}

export const fuseLayerNorm: SimplifyPass = {
  name: 'layernorm',
  run(input: ModelProto): PassResult {
    const opset = opsetVersion(input) ?? 1;
    if (opset < 17 || !hasOp(input, ['ReduceMean'])) return { model: input, changed: 0 };
    const { model } = copyModel(input);
    const names = new NameScope(model);
    let changed = 0;
    forEachScopeSync(model, (g, idx) => {
      const { shapes } = inferShapes(g, opset, (name) => constantOf(idx, name));
      const replaced = new Map<NodeProto, NodeProto | undefined>();
      for (const div of g.node) {
        if (!is(div, 'Div') || replaced.has(div)) continue;
        const m = match(idx, div, opset, shapes);
        if (!m || m.nodes.some((n) => replaced.has(n))) continue;
        const gammaT = m.gamma ? constantOf(idx, m.gamma) : undefined;
        const betaT = m.beta ? constantOf(idx, m.beta) : undefined;
        const type = (gammaT ?? betaT)?.dataType;
        if (type !== undefined && gammaT && betaT && gammaT.dataType !== betaT.dataType) continue;
        let gamma = m.gamma;
        if (!gamma) {
          const last = shapes.get(m.x)?.at(-1);
          const c = betaT ? dimsOf(betaT)[0] : typeof last === 'number' ? last : undefined;
          // Without a typed gamma or beta the element type of x is unknown; float32 is the common case and
          // a wrong guess fails the output check, which then drops this pass.
          if (c === undefined) continue;
          const ones: TensorProto = makeTensor(names.unique(`${m.output}_scale`), type ?? DataType.FLOAT, [c], type === DataType.FLOAT16 ? new Uint16Array(c).fill(0x3c00) : new Float32Array(c).fill(1));
          if (type !== undefined && type !== DataType.FLOAT && type !== DataType.FLOAT16) continue;
          g.initializer.push(ones);
          gamma = ones.name!;
        }
        const ln = makeNode('LayerNormalization', [m.x, gamma, ...(m.beta ? [m.beta] : [])], [m.output], {
          name: names.unique(`${div.name || m.output}_layernorm`),
          attributes: [makeAttribute('axis', -1, true), makeAttribute('epsilon', m.eps)],
        });
        m.nodes.forEach((n, i) => replaced.set(n, i === m.nodes.length - 1 ? ln : undefined));
      }
      // The fused node takes the place of the pattern's last node (its readers come after it).
      g.node = g.node.flatMap((n) => (replaced.has(n) ? (replaced.get(n) ? [replaced.get(n)!] : []) : [n]));
      changed += replaced.size;
    });
    return changed ? { model, changed } : { model: input, changed: 0 };
  },
};
