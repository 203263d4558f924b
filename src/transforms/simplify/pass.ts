/**
 * What a simplification pass is, and the graph helpers the passes share.
 *
 * A pass is a function Model → Model: it works on a copy (cloneModel shares tensor bytes, so a copy
 * costs the graph's structure only) and never writes into the input, so the step can drop a pass whose
 * result fails the output check and keep the model from before it.
 */
import { cloneModel } from '../../onnx/edit.js';
import { GraphIndex, replaceUses } from '../../onnx/graph.js';
import { encodeModel } from '../../onnx/codec.js';
import { lazyRange } from '../../onnx/tensor.js';
import { forEachGraph, forEachTensor as forEachTensorOf, subgraphsOf } from '../../onnx/walk.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';

export interface PassResult {
  model: ModelProto;
  /** Rewrites made (nodes removed or replaced, tensors shared…); 0 = the model is unchanged. */
  changed: number;
}

export interface SimplifyPass {
  name: string;
  run(model: ModelProto): PassResult | Promise<PassResult>;
}

/** A copy of the model to rewrite (tensor bytes shared) and its main graph. */
export function copyModel(model: ModelProto): { model: ModelProto; graph: GraphProto | undefined } {
  const out = cloneModel(model);
  return { model: out, graph: out.graph };
}

export const isDefaultDomain = (n: NodeProto) => (n.domain ?? '') === '' || n.domain === 'ai.onnx';

/**
 * The constant tensor behind a value in the main graph (initializer or Constant node), if any. A
 * tensor a lazy read left in the model file is one (its values are read when a pass asks for them);
 * other external data, not loaded, is not.
 */
export function constantOf(idx: GraphIndex, name: string | undefined): TensorProto | undefined {
  if (!name) return undefined;
  const w = idx.weight(name);
  return w?.tensor.dataLocation === 1 && !w.tensor.lazyFile ? undefined : w?.tensor;
}

/**
 * The model's encoded size as if read whole: a lazily read tensor counts with its payload (a view of one
 * untouched zero buffer stands in for it; the encoder sums lengths without reading the bytes).
 */
export function encodedSize(model: ModelProto): number {
  let longest = 0;
  forEachTensorOf(model, (t) => void (t.lazyFile && (longest = Math.max(longest, lazyLength(t)))));
  if (!longest) return encodeModel(model).byteLength;
  const zeros = new Uint8Array(longest);
  const out = cloneModel(model);
  forEachTensorOf(out, (t) => {
    if (!t.lazyFile) return;
    t.rawData = zeros.subarray(0, lazyLength(t));
    t.dataLocation = undefined;
    t.externalData = [];
  });
  return encodeModel(out).byteLength;
}

const lazyLength = (t: TensorProto) => lazyRange(t).length;


/** The one node reading `name`, when exactly one does and the value is not a graph output. */
export function soleConsumer(idx: GraphIndex, name: string): NodeProto | undefined {
  if (idx.isGraphOutput(name)) return undefined;
  // A node reading the value twice (Mul(d, d)) is listed twice.
  const c = new Set(idx.consumersOf(name));
  return c.size === 1 ? [...c][0] : undefined;
}

/** Scalar float value of a constant with one element (any shape), if it is one. */
export function scalarOf(idx: GraphIndex, name: string | undefined, read: (t: TensorProto) => Float32Array): number | undefined {
  const t = constantOf(idx, name);
  if (!t || t.dims.reduce<number>((a, d) => a * Number(d), 1) !== 1) return undefined;
  try {
    return read(t)[0];
  } catch {
    return undefined;
  }
}

/** Removes `nodes` from the graph (by identity). */
export function removeNodes(g: GraphProto, nodes: Iterable<NodeProto>): void {
  const drop = new Set(nodes);
  g.node = g.node.filter((n) => !drop.has(n));
}

/** Nodes in every graph of the model (subgraphs of If / Loop / Scan included). */
export function nodeCount(model: ModelProto): number {
  let n = 0;
  if (model.graph) forEachGraph(model.graph, (g) => (n += g.node.length));
  return n;
}

/**
 * Calls `fn` for the main graph and then every subgraph (If branches, Loop and Scan bodies, at any
 * depth), each with an index whose `outer` chain reaches the enclosing graphs so constants defined
 * there are seen. Each index is built when its graph is visited: edits to enclosing graphs show.
 */
export async function forEachScope(model: ModelProto, fn: (g: GraphProto, idx: GraphIndex) => void | Promise<void>): Promise<void> {
  const visit = async (g: GraphProto, outer: GraphIndex | undefined) => {
    await fn(g, new GraphIndex(g, outer));
    const after = new GraphIndex(g, outer);
    for (const n of g.node) for (const sub of subgraphsOf(n)) await visit(sub, after);
  };
  if (model.graph) await visit(model.graph, undefined);
}

/** forEachScope for passes that do not await. */
export function forEachScopeSync(model: ModelProto, fn: (g: GraphProto, idx: GraphIndex) => void): void {
  const visit = (g: GraphProto, outer: GraphIndex | undefined) => {
    fn(g, new GraphIndex(g, outer));
    const after = new GraphIndex(g, outer);
    for (const n of g.node) for (const sub of subgraphsOf(n)) visit(sub, after);
  };
  if (model.graph) visit(model.graph, undefined);
}

/** Points every reader of each key of `renames` (in `g` and its subgraphs) at its value, in one sweep. */
export function renameReads(g: GraphProto, renames: Map<string, string>): void {
  if (!renames.size) return;
  for (const n of g.node) {
    for (let i = 0; i < n.input.length; i++) n.input[i] = renames.get(n.input[i]) ?? n.input[i];
    for (const sub of subgraphsOf(n)) for (const [from, to] of renames) replaceUses(sub, from, to);
  }
}

/** Whether any graph of the model has a node of one of these ops: passes look before they copy. */
export function hasOp(model: ModelProto, ops: readonly string[]): boolean {
  const want = new Set(ops);
  let found = false;
  if (model.graph) forEachGraph(model.graph, (g) => (found ||= g.node.some((n) => want.has(n.opType ?? ''))));
  return found;
}
