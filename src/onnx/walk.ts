/**
 * Visiting every graph and every tensor of a model: the main graph, subgraphs in If/Loop/Scan
 * attributes (at any depth), training-info graphs and function bodies.
 */
import type { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto } from './types.js';

/** Graphs held by a node's attributes (If branches, Loop/Scan bodies). */
export function subgraphsOf(node: NodeProto): GraphProto[] {
  const out: GraphProto[] = [];
  for (const a of node.attribute) {
    if (a.g) out.push(a.g);
    for (const g of a.graphs) out.push(g);
  }
  return out;
}

/** Calls `visit` for `graph` and every graph nested inside it, parents first. */
export function forEachGraph(graph: GraphProto, visit: (g: GraphProto, parent: GraphProto | undefined) => void, parent?: GraphProto): void {
  visit(graph, parent);
  for (const node of graph.node) for (const sub of subgraphsOf(node)) forEachGraph(sub, visit, graph);
}

export function allGraphs(model: ModelProto): GraphProto[] {
  const out: GraphProto[] = [];
  const visit = (g: GraphProto) => out.push(g);
  if (model.graph) forEachGraph(model.graph, visit);
  for (const t of model.trainingInfo) {
    if (t.initialization) forEachGraph(t.initialization, visit);
    if (t.algorithm) forEachGraph(t.algorithm, visit);
  }
  return out;
}

export type TensorSite =
  | { kind: 'initializer'; graph: GraphProto; index: number }
  | { kind: 'attribute'; node: NodeProto; attribute: AttributeProto; graph?: GraphProto }
  | { kind: 'sparse'; graph: GraphProto };

/** Every dense tensor stored in the model: initializers, Constant values, tensor attributes, sparse parts. */
export function forEachTensor(model: ModelProto, visit: (t: TensorProto, site: TensorSite) => void): void {
  const inNodes = (nodes: NodeProto[], graph?: GraphProto) => {
    for (const node of nodes) {
      for (const a of node.attribute) {
        if (a.t) visit(a.t, { kind: 'attribute', node, attribute: a, graph });
        for (const t of a.tensors) visit(t, { kind: 'attribute', node, attribute: a, graph });
        for (const s of [a.sparseTensor, ...a.sparseTensors]) {
          if (s?.values) visit(s.values, { kind: 'attribute', node, attribute: a, graph });
          if (s?.indices) visit(s.indices, { kind: 'attribute', node, attribute: a, graph });
        }
      }
    }
  };
  for (const g of allGraphs(model)) {
    g.initializer.forEach((t, index) => visit(t, { kind: 'initializer', graph: g, index }));
    for (const s of g.sparseInitializer) {
      if (s.values) visit(s.values, { kind: 'sparse', graph: g });
      if (s.indices) visit(s.indices, { kind: 'sparse', graph: g });
    }
    inNodes(g.node, g);
  }
  for (const f of model.functions) inNodes(f.node);
}
