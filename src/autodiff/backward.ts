/**
 * Reverse-mode differentiation of an ONNX graph into a training graph: the forward nodes, then one
 * backward block per forward node (in reverse order) built by its op's gradient rule (registry.ts),
 * all standard ONNX ops. The trainable parameters become graph INPUTS (so a training loop feeds new
 * values every step without rebuilding anything); the loss and one gradient per parameter
 * (`grad/<param>`) are the graph outputs.
 *
 * Which nodes get differentiated: those with a float input that depends on a parameter (forward
 * reachability, stopping at integer / boolean values and at ops that have no derivative, see
 * NON_DIFFERENTIABLE) and whose output reaches the loss. Everything else — masks, shape arithmetic,
 * position ids — is a constant to the backward pass. A node on that path whose op has no rule is a
 * CompressError naming the op and node.
 */
import { CompressError } from '../errors.js';
import { DataType } from '../onnx/dtypes.js';
import { extendGraph } from '../onnx/edit.js';
import { attrInt, GraphIndex, makeNode, NameScope, opsetVersion } from '../onnx/graph.js';
import { dimsOf, tensorValues } from '../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../onnx/types.js';
import { subgraphsOf } from '../onnx/walk.js';
import { aTensor, GradBuilder, type ShapeInfo } from './builder.js';
import { gradRule, NON_DIFFERENTIABLE } from './registry.js';

export interface TrainingGraphOptions {
  /** Float initializers to train: they become graph inputs. */
  params: string[];
  /** The value to minimize (a scalar, or summed when it is not). */
  loss: string;
  /** Shapes of the forward values (probeShapes). */
  shapes: ShapeInfo;
  /** Forward values to return as well (e.g. the logits), after the loss and gradients. */
  outputs?: string[];
}

export interface TrainingGraph {
  model: ModelProto;
  loss: string;
  /** Parameter name → its gradient's output name. */
  gradients: Map<string, string>;
  /** Parameter name → the initializer it was (its current value; feed it as an input). */
  params: Map<string, TensorProto>;
  /** Forward nodes that were differentiated. */
  differentiated: number;
}

const FLOAT_TYPES = new Set(['float32', 'float64', 'float16', 'bfloat16']);
const FLOAT_ELEMENTS = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16]);

/** Whether a node output is a float value (from the probed type; unprobed outputs count as float, but a Cast says). */
function isFloatOutput(node: NodeProto, output: string, shapes: ShapeInfo): boolean {
  const t = shapes.get(output)?.type;
  if (t) return FLOAT_TYPES.has(t);
  if (node.opType === 'Cast') return FLOAT_ELEMENTS.has(attrInt(node, 'to', 0));
  return true;
}

function valueInfo(name: string, elemType: number, dims?: number[]): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, ...(dims ? { shape: { dim: dims.map((d) => ({ dimValue: d })) } } : {}) } },
    metadataProps: [],
  };
}

export function buildTrainingGraph(model: ModelProto, opts: TrainingGraphOptions): TrainingGraph {
  const g = model.graph;
  if (!g) throw new CompressError('model', 'the model has no graph');
  const opset = opsetVersion(model, '') ?? 0;
  if (opset < 13) throw new CompressError('compress', `autodiff needs opset ≥ 13 (the model imports opset ${opset})`);
  const index = new GraphIndex(g);
  const params = new Map<string, TensorProto>();
  let floatType: number | undefined;
  for (const name of opts.params) {
    const t = index.initializers.get(name);
    if (!t) throw new CompressError('compress', `autodiff: "${name}" is not an initializer of the graph`);
    if (t.dataType !== DataType.FLOAT && t.dataType !== DataType.DOUBLE) throw new CompressError('compress', `autodiff: parameter "${name}" is not float32/float64`);
    if (floatType !== undefined && t.dataType !== floatType) throw new CompressError('compress', 'autodiff: parameters of mixed float types');
    floatType = t.dataType;
    params.set(name, t);
  }
  if (floatType === undefined) throw new CompressError('compress', 'autodiff: no parameters to train');

  // Forward: values that depend (through differentiable float ops) on a parameter.
  const active = new Set<string>(params.keys());
  for (const node of g.node) {
    if (NON_DIFFERENTIABLE.has(node.opType ?? '') || !node.input.some((i) => active.has(i))) continue;
    if (subgraphsOf(node).length) throw new CompressError('compress', `autodiff: ${node.opType} "${node.name ?? ''}" (control flow) lies on a trainable path; it cannot be differentiated`);
    for (const o of node.output) if (o && isFloatOutput(node, o, opts.shapes)) active.add(o);
  }
  if (!active.has(opts.loss)) throw new CompressError('compress', `autodiff: the loss "${opts.loss}" does not depend on any parameter`);

  // Backward: the active nodes whose outputs reach the loss.
  const needed = new Set<string>([opts.loss]);
  const path: NodeProto[] = [];
  for (let i = g.node.length - 1; i >= 0; i--) {
    const node = g.node[i];
    if (!node.output.some((o) => needed.has(o) && active.has(o))) continue;
    path.push(node);
    for (const x of node.input) if (active.has(x)) needed.add(x);
  }

  const constants = (name: string) => {
    const site = index.weight(name);
    return site ? tensorValues(site.tensor) : undefined;
  };
  const b = new GradBuilder(new NameScope(model), new Map(opts.shapes), floatType, opset, constants);
  const parts = new Map<string, string[]>();
  const gradOf = (v: string): string | undefined => {
    const list = parts.get(v);
    if (!list?.length) return undefined;
    if (list.length > 1) parts.set(v, [b.sum(list)]);
    return parts.get(v)![0];
  };
  const lossDims = opts.shapes.get(opts.loss)?.dims;
  const seed = lossDims && lossDims.length === 0 ? b.scalar(1) : b.op('ConstantOfShape', [b.shape(opts.loss)], [aTensor('value', b.floatTensor(1))]);
  parts.set(opts.loss, [seed]);

  for (const node of path) {
    const dy = node.output.map((o) => (active.has(o) ? gradOf(o) : undefined));
    if (dy.every((d) => d === undefined)) continue;
    const rule = gradRule(node.opType ?? '', node.domain ?? '');
    if (!rule) {
      const domain = node.domain ? `${node.domain}.` : '';
      throw new CompressError('compress', `autodiff: no gradient rule for ${domain}${node.opType} (node "${node.name ?? ''}"), which lies on the path from the trainable parameters to the loss`);
    }
    const wants = node.input.map((x) => active.has(x));
    const grads = rule(b, node, dy, wants);
    grads.forEach((d, i) => {
      if (!d || !wants[i]) return;
      const x = node.input[i];
      parts.set(x, [...(parts.get(x) ?? []), d]);
    });
  }

  const gradients = new Map<string, string>();
  const outputs: ValueInfoProto[] = [valueInfo(opts.loss, floatType)];
  for (const [name, t] of params) {
    const dims = dimsOf(t);
    const d = gradOf(name) ?? b.op('ConstantOfShape', [b.ints(dims)], [aTensor('value', b.floatTensor(0))]);
    const out = b.name(`${name}`);
    b.nodes.push(makeNode('Identity', [d], [out], { name: b.name('grad_out') }));
    gradients.set(name, out);
    outputs.push(valueInfo(out, floatType, dims));
  }
  for (const o of opts.outputs ?? []) outputs.push(g.output.find((v) => v.name === o) ?? { name: o, metadataProps: [] });

  const inputNames = new Set(g.input.map((v) => v.name));
  const paramInputs = [...params].filter(([name]) => !inputNames.has(name)).map(([name, t]) => valueInfo(name, floatType!, dimsOf(t)));
  const trained = extendGraph(model, {
    nodes: b.nodes,
    initializers: b.initializers,
    dropInitializers: new Set(params.keys()),
    inputs: paramInputs,
    outputs,
    replaceOutputs: true,
  });
  return { model: trained, loss: opts.loss, gradients, params, differentiated: path.length };
}
