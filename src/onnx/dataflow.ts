/**
 * What a value's numbers depend on, across the whole model: walking back from values to the nodes that
 * compute them, into If/Loop/Scan bodies and out of them to the enclosing graphs' values they read.
 *
 * - Only data counts: the output of Shape and Size depends on its input's shape, not on its values, so the
 *   walk stops there (a ConstantOfShape sized by an input is a constant as far as values go).
 * - An If output depends on the condition and on the same output of each branch; a Loop or Scan output,
 *   conservatively, on all of the node's inputs and all of its body's outputs, and a body's own inputs on
 *   the node's inputs.
 * - Names are resolved per scope (a branch may define a name its sibling branch defines too).
 *
 *   const df = new Dataflow(model);
 *   df.ancestors([{ graph: model.graph!, name: 'stateN' }]).nodes   // every node stateN's values come from
 */
import { indexModel, type GraphIndex } from './graph.js';
import type { GraphProto, ModelProto, NodeProto } from './types.js';
import { subgraphsOf } from './walk.js';

/** A value as a graph reads it. */
export interface ValueRef {
  graph: GraphProto;
  name: string;
}

export interface Ancestry {
  /** Nodes whose outputs the values depend on (Shape/Size excluded, their inputs not followed). */
  nodes: Set<NodeProto>;
  /** Values visited, per graph that defines them. */
  values: Map<GraphProto, Set<string>>;
  /** Inputs of the main graph reached (not initializers). */
  inputs: Set<string>;
}

/** Ops whose output does not depend on their input's values. */
const SHAPE_ONLY = new Set(['Shape', 'Size']);

export class Dataflow {
  private readonly indexes: Map<GraphProto, GraphIndex>;
  /** Subgraph → the node that holds it and the graph that node sits in. */
  private readonly owner = new Map<GraphProto, { node: NodeProto; graph: GraphProto }>();
  private readonly graphOf = new Map<NodeProto, GraphProto>();

  constructor(readonly model: ModelProto) {
    this.indexes = indexModel(model);
    for (const [g] of this.indexes) {
      for (const n of g.node) {
        this.graphOf.set(n, g);
        for (const sub of subgraphsOf(n)) this.owner.set(sub, { node: n, graph: g });
      }
    }
  }

  /** Every node of every graph, with its graph. */
  *nodes(): Generator<{ node: NodeProto; graph: GraphProto }> {
    for (const [node, graph] of this.graphOf) yield { node, graph };
  }

  graphOfNode(node: NodeProto): GraphProto | undefined {
    return this.graphOf.get(node);
  }

  /** The values (and the nodes computing them) that `start` depends on. */
  ancestors(start: Iterable<ValueRef>): Ancestry {
    const out: Ancestry = { nodes: new Set(), values: new Map(), inputs: new Set() };
    const stack: ValueRef[] = [...start];
    const main = this.model.graph;
    while (stack.length) {
      const { graph, name } = stack.pop()!;
      if (!name) continue;
      // The scope that defines the name: this graph or an enclosing one.
      let idx = this.indexes.get(graph);
      while (idx && !idx.producer.has(name) && !idx.graphInputs.has(name) && !idx.initializers.has(name)) idx = idx.outer;
      if (!idx) continue;
      const g = idx.graph;
      let seen = out.values.get(g);
      if (!seen) out.values.set(g, (seen = new Set()));
      if (seen.has(name)) continue;
      seen.add(name);
      const p = idx.producer.get(name);
      if (!p) {
        if (!idx.graphInputs.has(name)) continue; // an initializer: a constant
        if (g === main) {
          if (!idx.initializers.has(name)) out.inputs.add(name);
          continue;
        }
        // A Loop/Scan body's own input: whatever the node feeds it.
        const o = this.owner.get(g);
        if (o) for (const i of o.node.input) stack.push({ graph: o.graph, name: i });
        continue;
      }
      if (SHAPE_ONLY.has(p.opType ?? '') && (p.domain ?? '') === '') continue;
      out.nodes.add(p);
      const subs = subgraphsOf(p);
      if (p.opType === 'If' && subs.length) {
        const k = p.output.indexOf(name);
        stack.push({ graph: g, name: p.input[0] });
        for (const b of subs) if (b.output[k]?.name) stack.push({ graph: b, name: b.output[k].name! });
        continue;
      }
      for (const i of p.input) stack.push({ graph: g, name: i });
      for (const b of subs) for (const o of b.output) if (o.name) stack.push({ graph: b, name: o.name });
    }
    return out;
  }

  /** Whether `ancestry` visited the value `name` as `node`'s graph defines it. */
  static visited(ancestry: Ancestry, graph: GraphProto, name: string): boolean {
    return ancestry.values.get(graph)?.has(name) ?? false;
  }
}
