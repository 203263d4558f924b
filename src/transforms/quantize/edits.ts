/**
 * Graph edits collected while quantizing and applied in one pass per graph at the end, so a model with
 * many weights is rewritten in linear time: nodes inserted before a node, nodes replaced, tensors added
 * where the original weight lived (an initializer stays an initializer; a Constant node's weight becomes
 * Constant nodes at the same place, as in Silero VAD v5's If branches) and tensors removed.
 */
import { makeAttribute, makeNode, nodeReads, type NameScope, type WeightSite } from '../../onnx/graph.js';
import type { GraphProto, NodeProto, TensorProto } from '../../onnx/types.js';

export class GraphEdits {
  private readonly before = new Map<GraphProto, Map<NodeProto, NodeProto[]>>();
  private readonly replaced = new Map<GraphProto, Map<NodeProto, NodeProto[]>>();
  private readonly removedInits = new Map<GraphProto, Set<TensorProto>>();
  private readonly addedInits = new Map<GraphProto, TensorProto[]>();
  private readonly maybeUnused: { site: WeightSite; name: string }[] = [];

  constructor(readonly names: NameScope) {}

  /** Adds `tensor` (its name made unique from `base`) next to the weight at `site`; returns the name. */
  addTensor(site: WeightSite, base: string, tensor: TensorProto): string {
    const name = this.names.unique(base);
    tensor.name = name;
    if (site.kind === 'initializer') {
      let list = this.addedInits.get(site.graph);
      if (!list) this.addedInits.set(site.graph, (list = []));
      list.push(tensor);
    } else {
      const node = makeNode('Constant', [], [name], { name: this.names.unique(`${name}_Constant`), attributes: [makeAttribute('value', tensor)] });
      this.insertBefore(site.graph, site.node, [node]);
    }
    return name;
  }

  /** Drops the original weight: the initializer, or the Constant node that held it. */
  removeWeight(site: WeightSite): void {
    if (site.kind === 'initializer') {
      let set = this.removedInits.get(site.graph);
      if (!set) this.removedInits.set(site.graph, (set = new Set()));
      set.add(site.tensor);
    } else this.replace(site.graph, site.node, []);
  }

  /** Drops the weight at `site` (named `name`) at apply() time if nothing reads it any more. */
  removeIfUnused(site: WeightSite, name: string): void {
    this.maybeUnused.push({ site, name });
  }

  insertBefore(graph: GraphProto, node: NodeProto, nodes: NodeProto[]): void {
    let m = this.before.get(graph);
    if (!m) this.before.set(graph, (m = new Map()));
    const list = m.get(node);
    if (list) list.push(...nodes);
    else m.set(node, [...nodes]);
  }

  replace(graph: GraphProto, node: NodeProto, nodes: NodeProto[]): void {
    let m = this.replaced.get(graph);
    if (!m) this.replaced.set(graph, (m = new Map()));
    m.set(node, nodes);
  }

  apply(): void {
    this.applyNodes();
    // Weights whose last reader was just rewritten (e.g. a Conv bias copied for ConvInteger).
    for (const { site, name } of this.maybeUnused) {
      const g = site.graph;
      const read = g.output.some((o) => o.name === name) || g.node.some((n) => nodeReads(n).includes(name));
      if (!read) this.removeWeight(site);
    }
    this.maybeUnused.length = 0;
    this.applyNodes();
    for (const [g, set] of this.removedInits) g.initializer = g.initializer.filter((t) => !set.has(t));
    for (const [g, list] of this.addedInits) g.initializer.push(...list);
    this.removedInits.clear();
    this.addedInits.clear();
  }

  private applyNodes(): void {
    const graphs = new Set<GraphProto>([...this.before.keys(), ...this.replaced.keys()]);
    for (const g of graphs) {
      const before = this.before.get(g);
      const replaced = this.replaced.get(g);
      const out: NodeProto[] = [];
      for (const n of g.node) {
        const b = before?.get(n);
        if (b) out.push(...b);
        const r = replaced?.get(n);
        if (r) out.push(...r);
        else out.push(n);
      }
      g.node = out;
    }
    this.before.clear();
    this.replaced.clear();
  }
}
