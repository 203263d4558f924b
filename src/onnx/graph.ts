/**
 * The graph model transforms work on: who produces and who consumes each value, where a weight lives
 * (an initializer, or a Constant node as in PaddleOCR and Silero v5, possibly in an outer scope of an
 * If/Loop/Scan body), topological order, dead-code elimination, unique names and opset imports.
 *
 * Values read by a subgraph from an enclosing graph ("outer-scope references") count as inputs of the
 * node that owns the subgraph, so liveness and ordering see them.
 */
import { CompressError } from '../errors.js';
import type { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from './types.js';
import { allGraphs, subgraphsOf } from './walk.js';

/** Names a graph defines itself: its inputs, initializers and node outputs. */
function definedNames(g: GraphProto): Set<string> {
  const s = new Set<string>();
  for (const v of g.input) if (v.name) s.add(v.name);
  for (const t of g.initializer) if (t.name) s.add(t.name);
  for (const sp of g.sparseInitializer) if (sp.values?.name) s.add(sp.values.name);
  for (const n of g.node) for (const o of n.output) if (o) s.add(o);
  return s;
}

/** Values a subgraph (at any depth) reads from the scopes around it. */
export function outerScopeReads(g: GraphProto): Set<string> {
  const defined = definedNames(g);
  const out = new Set<string>();
  for (const n of g.node) {
    for (const i of n.input) if (i && !defined.has(i)) out.add(i);
    for (const sub of subgraphsOf(n)) for (const i of outerScopeReads(sub)) if (!defined.has(i)) out.add(i);
  }
  for (const o of g.output) if (o.name && !defined.has(o.name)) out.add(o.name);
  return out;
}

/** Explicit inputs of a node plus the outer-scope values its subgraphs read. */
export function nodeReads(n: NodeProto): string[] {
  const subs = subgraphsOf(n);
  if (subs.length === 0) return n.input.filter((i) => i !== '');
  const s = new Set(n.input.filter((i) => i !== ''));
  for (const g of subs) for (const i of outerScopeReads(g)) s.add(i);
  return [...s];
}

export type WeightSite =
  | { kind: 'initializer'; tensor: TensorProto; graph: GraphProto }
  | { kind: 'constant'; tensor: TensorProto; graph: GraphProto; node: NodeProto; attribute: AttributeProto };

/** Index of one graph; `outer` links to the enclosing graph's index for subgraphs. */
export class GraphIndex {
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly initializers = new Map<string, TensorProto>();
  readonly graphOutputs: Set<string>;
  readonly graphInputs: Set<string>;

  constructor(
    readonly graph: GraphProto,
    readonly outer?: GraphIndex,
  ) {
    for (const t of graph.initializer) if (t.name) this.initializers.set(t.name, t);
    for (const n of graph.node) {
      for (const o of n.output) if (o) this.producer.set(o, n);
      for (const i of nodeReads(n)) {
        const list = this.consumers.get(i);
        if (list) list.push(n);
        else this.consumers.set(i, [n]);
      }
    }
    this.graphOutputs = new Set(graph.output.map((o) => o.name ?? ''));
    this.graphInputs = new Set(graph.input.map((i) => i.name ?? ''));
  }

  consumersOf(name: string): NodeProto[] {
    return this.consumers.get(name) ?? [];
  }

  /**
   * The constant tensor behind a value: an initializer (that is not overridable as a graph input)
   * or a Constant node's `value`, looked up here and then in enclosing graphs.
   */
  weight(name: string): WeightSite | undefined {
    const init = this.initializers.get(name);
    if (init && !this.graphInputs.has(name)) return { kind: 'initializer', tensor: init, graph: this.graph };
    const p = this.producer.get(name);
    if (p && p.opType === 'Constant' && (p.domain ?? '') === '') {
      const attribute = p.attribute.find((a) => a.name === 'value' && a.t);
      if (attribute?.t) return { kind: 'constant', tensor: attribute.t, graph: this.graph, node: p, attribute };
      return undefined;
    }
    if (p || init || this.graphInputs.has(name)) return undefined;
    return this.outer?.weight(name);
  }

  isGraphOutput(name: string): boolean {
    return this.graphOutputs.has(name);
  }
}

/** Indexes for every graph of a model, subgraphs linked to their enclosing graph's index. */
export function indexModel(model: ModelProto): Map<GraphProto, GraphIndex> {
  const out = new Map<GraphProto, GraphIndex>();
  const visit = (g: GraphProto, outer?: GraphIndex) => {
    const idx = new GraphIndex(g, outer);
    out.set(g, idx);
    for (const n of g.node) for (const sub of subgraphsOf(n)) visit(sub, idx);
  };
  if (model.graph) visit(model.graph);
  return out;
}

/**
 * Sorts nodes so each comes after the producers of what it reads (stable for already sorted graphs).
 * Throws a CompressError on a cycle (the pipeline names the model file).
 */
export function topologicalSort(g: GraphProto): void {
  const producerIndex = new Map<string, number>();
  g.node.forEach((n, i) => n.output.forEach((o) => o && producerIndex.set(o, i)));
  const indegree = new Array<number>(g.node.length).fill(0);
  const dependents: number[][] = g.node.map(() => []);
  g.node.forEach((n, i) => {
    for (const name of new Set(nodeReads(n))) {
      const p = producerIndex.get(name);
      if (p === undefined || p === i) continue;
      indegree[i]++;
      dependents[p].push(i);
    }
  });
  const ready: number[] = [];
  for (let i = g.node.length - 1; i >= 0; i--) if (indegree[i] === 0) ready.push(i);
  const order: NodeProto[] = [];
  // A stack of ready nodes popped in ascending index order keeps the original order when possible.
  while (ready.length) {
    const i = ready.pop()!;
    order.push(g.node[i]);
    const next = dependents[i].filter((d) => --indegree[d] === 0).sort((a, b) => b - a);
    ready.push(...next);
    ready.sort((a, b) => b - a);
  }
  if (order.length !== g.node.length) {
    // A malformed model (a node reading its own output, directly or through others): bad input, named.
    const stuck = g.node.find((_, i) => indegree[i] > 0);
    throw new CompressError('model', `graph "${g.name ?? ''}" has a cycle through node "${stuck?.name || stuck?.opType || '?'}" (a node reads a value computed from its own output)`);
  }
  g.node = order;
}

/**
 * Removes nodes whose outputs nobody reads (graph outputs and subgraph reads count), then initializers
 * and value_info entries nothing refers to. Subgraphs are cleaned too. Returns the number of nodes removed.
 */
export function removeDeadCode(g: GraphProto): number {
  let removed = 0;
  for (const n of g.node) for (const sub of subgraphsOf(n)) removed += removeDeadCode(sub);
  const live = new Set<string>(g.output.map((o) => o.name ?? ''));
  const keep: NodeProto[] = [];
  for (let i = g.node.length - 1; i >= 0; i--) {
    const n = g.node[i];
    if (n.output.some((o) => live.has(o))) {
      keep.push(n);
      for (const r of nodeReads(n)) live.add(r);
    } else removed++;
  }
  g.node = keep.reverse();
  const inputs = new Set(g.input.map((v) => v.name));
  g.initializer = g.initializer.filter((t) => live.has(t.name ?? '') || inputs.has(t.name));
  const defined = new Set<string>();
  for (const n of g.node) for (const o of n.output) defined.add(o);
  g.valueInfo = g.valueInfo.filter((v) => defined.has(v.name ?? '') || live.has(v.name ?? ''));
  return removed;
}

/** Every value and node name in the model, to make new names that clash with none of them. */
export class NameScope {
  private readonly used = new Set<string>();
  constructor(model: ModelProto) {
    for (const g of allGraphs(model)) {
      for (const v of [...g.input, ...g.output, ...g.valueInfo]) if (v.name) this.used.add(v.name);
      for (const t of g.initializer) if (t.name) this.used.add(t.name);
      for (const n of g.node) {
        if (n.name) this.used.add(n.name);
        for (const x of [...n.input, ...n.output]) if (x) this.used.add(x);
      }
    }
  }
  /** `base` itself if free, else `base_1`, `base_2`, … */
  unique(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }
}

/** The opset version imported for a domain ('' = ai.onnx), or undefined. */
export function opsetVersion(model: ModelProto, domain = ''): number | undefined {
  const e = model.opsetImport.find((o) => (o.domain ?? '') === domain || (domain === '' && o.domain === 'ai.onnx'));
  return e?.version === undefined ? undefined : Number(e.version);
}

/** Imports `domain` at `version` when the model does not import it yet; returns the version in force. */
export function ensureOpset(model: ModelProto, domain: string, version: number): number {
  const have = opsetVersion(model, domain);
  if (have !== undefined) return have;
  model.opsetImport.push({ domain, version });
  return version;
}

/** A tensor ValueInfoProto: element type and dims (numbers fixed, strings symbolic). */
export function makeValueInfo(name: string, elemType: number, dims: (number | string)[]): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
    metadataProps: [],
  };
}

/** A GraphProto with its repeated fields in place. */
export function makeGraph(
  name: string,
  nodes: NodeProto[],
  inputs: ValueInfoProto[],
  outputs: ValueInfoProto[],
  initializers: TensorProto[] = [],
): GraphProto {
  return {
    name,
    node: nodes,
    initializer: initializers,
    input: inputs,
    output: outputs,
    valueInfo: [],
    quantizationAnnotation: [],
    sparseInitializer: [],
    metadataProps: [],
  };
}

/** A ModelProto around a graph: IR 8, the default domain at `opset` (17), plus any other domains. */
export function makeModel(graph: GraphProto, opset = 17, otherOpsets: { domain: string; version: number }[] = []): ModelProto {
  return {
    irVersion: 8,
    producerName: 'unplugin-onnx-compress',
    opsetImport: [{ domain: '', version: opset }, ...otherOpsets],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
    graph,
  };
}

/** A NodeProto with its repeated fields in place. */
export function makeNode(
  opType: string,
  inputs: string[],
  outputs: string[],
  opts: { name?: string; domain?: string; attributes?: AttributeProto[] } = {},
): NodeProto {
  const node: NodeProto = { input: inputs, output: outputs, opType, attribute: opts.attributes ?? [], metadataProps: [] };
  if (opts.name !== undefined) node.name = opts.name;
  if (opts.domain) node.domain = opts.domain;
  return node;
}

/** An AttributeProto of the right type for a JS value (numbers: INT when `int`, else FLOAT). */
export function makeAttribute(name: string, value: number | string | number[] | TensorProto | GraphProto, int = false): AttributeProto {
  const a: AttributeProto = { name, floats: [], ints: [], strings: [], tensors: [], graphs: [], typeProtos: [], sparseTensors: [] };
  if (typeof value === 'number') {
    if (int) {
      a.i = value;
      a.type = 2;
    } else {
      a.f = value;
      a.type = 1;
    }
  } else if (typeof value === 'string') {
    a.s = Buffer.from(value, 'utf8');
    a.type = 3;
  } else if (Array.isArray(value)) {
    if (int) {
      a.ints = value;
      a.type = 7;
    } else {
      a.floats = value;
      a.type = 6;
    }
  } else if ('node' in value) {
    a.g = value;
    a.type = 5;
  } else {
    a.t = value;
    a.type = 4;
  }
  return a;
}

export function attribute(node: NodeProto, name: string): AttributeProto | undefined {
  return node.attribute.find((a) => a.name === name);
}

export function attrInt(node: NodeProto, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a?.i === undefined ? fallback : Number(a.i);
}

export function attrFloat(node: NodeProto, name: string, fallback: number): number {
  return attribute(node, name)?.f ?? fallback;
}

export function attrInts(node: NodeProto, name: string): number[] | undefined {
  const a = attribute(node, name);
  return a && a.ints.length ? a.ints.map(Number) : undefined;
}

/** Points every reader of `from` in `g` (and in its subgraphs, unless shadowed) at `to`. */
export function replaceUses(g: GraphProto, from: string, to: string, except?: NodeProto): void {
  for (const n of g.node) {
    if (n === except) continue;
    for (let i = 0; i < n.input.length; i++) if (n.input[i] === from) n.input[i] = to;
    for (const sub of subgraphsOf(n)) if (!definedNames(sub).has(from)) replaceUses(sub, from, to);
  }
  for (const o of g.output) if (o.name === from) o.name = to;
}

/** Sets (or adds) a value_info entry: element type and dims (numbers or symbolic names). */
export function setValueInfo(g: GraphProto, name: string, elemType: number, dims?: (number | string)[]): void {
  const info: ValueInfoProto = {
    name,
    type: {
      tensorType: {
        elemType,
        shape: dims && { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
    metadataProps: [],
  };
  const list = g.valueInfo;
  const i = list.findIndex((v) => v.name === name);
  if (i >= 0) list[i] = info;
  else list.push(info);
}

/** Drops value_info for `name` (when a transform changes a value's type or shape without knowing the new one). */
export function forgetValueInfo(g: GraphProto, name: string): void {
  g.valueInfo = g.valueInfo.filter((v) => v.name !== name);
}
