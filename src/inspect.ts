/**
 * What is in a model: header, opsets, inputs/outputs, op histogram, and where the weights are, how
 * many parameters and bytes they hold, which op consumes each one and which element types they use.
 *
 * `inspectModel` is pure: it reads only the decoded model (external tensors are described from their
 * `external_data` entries, not loaded). The caller may pass a `statExternal` callback to add the on-disk
 * size of external data files.
 *
 * Definitions
 * - A *weight* is a constant tensor stored in the model: an initializer (dense or sparse), a Constant
 *   node's `value` / `sparse_value` / `value_*` attribute, or another node's tensor attribute (e.g.
 *   ConstantOfShape's `value`). Weights of every graph count, subgraphs (If/Loop/Scan bodies, at any
 *   depth), training graphs and model-local function bodies included.
 * - Parameters of a weight = its element count (product of dims; a scalar has 1). Bytes = its stored
 *   payload: raw_data length, external `length`, or the packed size of its typed field.
 * - A weight's consumer is the first node (document order, a node before the subgraphs it holds) that
 *   reads it, honouring scoping: a subgraph reading an outer-scope name sees the enclosing graph's
 *   weight unless the subgraph defines that name itself. Ops from non-default domains are named
 *   `domain:Op`.
 */
import { DataType, byteLength, dataTypeName, isDataType } from './onnx/dtypes.js';
import { DataLocation } from './onnx/external.js';
import type { AttributeProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto, TypeProto, ValueInfoProto } from './onnx/types.js';
import { subgraphsOf } from './onnx/walk.js';

export type WeightLocation = 'initializer' | 'constant' | 'attribute';

export interface ValueReport {
  name: string;
  /** 'float32', 'int64', … for tensors; 'sequence<float32>', 'map<int64,float32>', 'optional<…>' otherwise; '?' when absent. */
  type: string;
  /** Dims: numbers, symbolic names, or null for an unknown dim; null when the rank itself is unknown. */
  shape: (number | string | null)[] | null;
}

export interface OpCount {
  /** Op type, `domain:Op` for non-default domains. */
  op: string;
  /** Nodes of this type anywhere in the model (main graph + subgraphs). */
  count: number;
  /** Of those, nodes inside subgraphs. */
  inSubgraphs: number;
}

export interface WeightTally {
  tensors: number;
  params: number;
  bytes: number;
}

export interface ByOp extends WeightTally {
  /** Consuming op type (`domain:Op` for non-default domains), `(graph output)` or `(unused)`. */
  op: string;
}

export interface ByDtype extends WeightTally {
  dtype: string;
}

export interface LocationTally extends WeightTally {
  /** Part of the tally that sits in subgraphs (If/Loop/Scan bodies). */
  inSubgraphs: WeightTally;
}

export interface ExternalFileReport {
  location: string;
  tensors: number;
  /** Sum of the referenced lengths. */
  bytes: number;
  /** End of the furthest referenced range (offset + length). */
  extent: number;
  /** Size on disk when the caller could stat it; null when it could not (missing file). */
  sizeOnDisk?: number | null;
}

export interface InspectReport {
  file?: string;
  fileBytes?: number;
  irVersion?: number;
  producer: { name?: string; version?: string };
  domain?: string;
  modelVersion?: number;
  graphName?: string;
  opsets: { domain: string; version: number }[];
  metadata: { key: string; value: string }[];
  inputs: ValueReport[];
  outputs: ValueReport[];
  /** Graph inputs that also have an initializer (overridable defaults; IR < 4 lists every weight so). */
  initializerInputs: number;
  nodes: { total: number; mainGraph: number; inSubgraphs: number; inFunctions: number };
  /** Graphs nested in node attributes (If branches, Loop/Scan bodies), at any depth. */
  subgraphs: number;
  functions: number;
  ops: OpCount[];
  weights: {
    total: WeightTally;
    byOp: ByOp[];
    byDtype: ByDtype[];
    byLocation: Record<WeightLocation, LocationTally>;
    /** Weights whose bytes are in external data files (also counted under byLocation). */
    external: WeightTally & { files: ExternalFileReport[] };
  };
  /** Plain-language remarks (weights in subgraph Constant nodes, external data, …). */
  notes: string[];
}

export interface InspectOptions {
  file?: string;
  fileBytes?: number;
  /** Size of an external data file named by `location` (relative to the model), or undefined if missing. */
  statExternal?: (location: string) => number | undefined;
}

/** Op type as reported: `Op` for ai.onnx, `domain:Op` otherwise. */
export function qualifiedOp(n: { opType?: string; domain?: string }): string {
  const d = n.domain ?? '';
  const op = n.opType ?? '?';
  return d === '' || d === 'ai.onnx' ? op : `${d}:${op}`;
}

function num(v: number | bigint | undefined): number | undefined {
  return v === undefined ? undefined : Number(v);
}

function elemName(t: number | undefined): string {
  if (t === undefined || t === 0) return '?';
  return isDataType(t) ? dataTypeName(t) : `type${t}`;
}

export function typeString(tp: TypeProto | undefined): string {
  if (!tp) return '?';
  if (tp.tensorType) return elemName(tp.tensorType.elemType);
  if (tp.sparseTensorType) return `sparse<${elemName(tp.sparseTensorType.elemType)}>`;
  if (tp.sequenceType) return `sequence<${typeString(tp.sequenceType.elemType)}>`;
  if (tp.mapType) return `map<${elemName(tp.mapType.keyType)},${typeString(tp.mapType.valueType)}>`;
  if (tp.optionalType) return `optional<${typeString(tp.optionalType.elemType)}>`;
  return '?';
}

function valueReport(v: ValueInfoProto): ValueReport {
  const tt = v.type?.tensorType ?? v.type?.sparseTensorType;
  const shape = tt?.shape ? tt.shape.dim.map((d) => (d.dimValue !== undefined ? Number(d.dimValue) : d.dimParam !== undefined && d.dimParam !== '' ? d.dimParam : null)) : null;
  return { name: v.name ?? '', type: typeString(v.type), shape };
}

function elementCountOf(dims: readonly (number | bigint)[]): number {
  let n = 1;
  for (const d of dims) n *= Number(d);
  return n;
}

/** Stored payload bytes of a dense tensor (external: its declared length). */
function tensorPayloadBytes(t: TensorProto, count: number): number {
  if (t.dataLocation === DataLocation.EXTERNAL) {
    const len = t.externalData.find((e) => e.key === 'length')?.value;
    if (len !== undefined && /^\d+$/.test(len)) return Number(len);
    return safeByteLength(t.dataType, count);
  }
  if (t.rawData) return t.rawData.length;
  if (t.dataType === DataType.STRING) {
    let n = 0;
    for (const s of t.stringData) n += s.length;
    return n;
  }
  return safeByteLength(t.dataType, count);
}

function safeByteLength(dt: number | undefined, count: number): number {
  try {
    return dt && isDataType(dt) && dt !== DataType.STRING ? byteLength(dt, count) : 0;
  } catch {
    return 0;
  }
}

interface Weight {
  names: string[]; // value names this weight is visible under (empty for non-Constant attribute tensors)
  location: WeightLocation;
  inSubgraph: boolean;
  dtype: string;
  params: number;
  bytes: number;
  external?: { location: string; offset: number; length: number };
  consumer?: string;
}

function describeTensor(t: TensorProto, location: WeightLocation, inSubgraph: boolean, names: string[]): Weight {
  const params = elementCountOf(t.dims);
  const w: Weight = { names, location, inSubgraph, dtype: elemName(t.dataType), params, bytes: tensorPayloadBytes(t, params) };
  if (t.dataLocation === DataLocation.EXTERNAL) {
    const get = (k: string) => t.externalData.find((e) => e.key === k)?.value;
    w.external = { location: get('location') ?? '?', offset: Number(get('offset') ?? 0) || 0, length: w.bytes };
  }
  return w;
}

function describeSparse(s: SparseTensorProto, location: WeightLocation, inSubgraph: boolean, names: string[]): Weight {
  // Parameters of a sparse weight: its stored (non-zero) values; bytes: values + indices.
  const values = s.values ? describeTensor(s.values, location, inSubgraph, names) : undefined;
  const indices = s.indices ? describeTensor(s.indices, location, inSubgraph, names) : undefined;
  return {
    names,
    location,
    inSubgraph,
    dtype: values?.dtype ?? '?',
    params: values?.params ?? 0,
    bytes: (values?.bytes ?? 0) + (indices?.bytes ?? 0),
    external: values?.external,
  };
}

/** A Constant node's value as a weight, from whichever value attribute it uses. */
function constantWeight(n: NodeProto, inSubgraph: boolean): Weight | undefined {
  const names = n.output.filter((o) => o !== '');
  for (const a of n.attribute) {
    if (a.t) return describeTensor(a.t, 'constant', inSubgraph, names);
    if (a.sparseTensor) return describeSparse(a.sparseTensor, 'constant', inSubgraph, names);
    const w = (dtype: string, params: number, bytes: number): Weight => ({ names, location: 'constant', inSubgraph, dtype, params, bytes });
    switch (a.name) {
      case 'value_float':
        return w('float32', 1, 4);
      case 'value_floats':
        return w('float32', a.floats.length, 4 * a.floats.length);
      case 'value_int':
        return w('int64', 1, 8);
      case 'value_ints':
        return w('int64', a.ints.length, 8 * a.ints.length);
      case 'value_string':
        return w('string', 1, a.s?.length ?? 0);
      case 'value_strings':
        return w('string', a.strings.length, a.strings.reduce((s, b) => s + b.length, 0));
    }
  }
  return undefined;
}

function isConstantNode(n: NodeProto): boolean {
  return n.opType === 'Constant' && (n.domain ?? '') === '';
}

/** Tensors held by an attribute, as weights attributed to the node holding them. */
function attributeWeights(a: AttributeProto, inSubgraph: boolean): Weight[] {
  const out: Weight[] = [];
  if (a.t) out.push(describeTensor(a.t, 'attribute', inSubgraph, []));
  for (const t of a.tensors) out.push(describeTensor(t, 'attribute', inSubgraph, []));
  if (a.sparseTensor) out.push(describeSparse(a.sparseTensor, 'attribute', inSubgraph, []));
  for (const s of a.sparseTensors) out.push(describeSparse(s, 'attribute', inSubgraph, []));
  return out;
}

/** Scope chain for name resolution: a name maps to a weight, or to null when defined as a non-weight. */
class Scope {
  private readonly names = new Map<string, Weight | null>();
  constructor(readonly parent?: Scope) {}
  define(name: string, w: Weight | null): void {
    if (name) this.names.set(name, w);
  }
  lookup(name: string): Weight | null | undefined {
    for (let s: Scope | undefined = this; s; s = s.parent) {
      const v = s.names.get(name);
      if (v !== undefined) return v;
    }
    return undefined;
  }
}

const fmt = (n: number): string => n.toLocaleString('en-US');

export function inspectModel(model: ModelProto, opts: InspectOptions = {}): InspectReport {
  const weights: Weight[] = [];
  const ops = new Map<string, OpCount>();
  const nodes = { total: 0, mainGraph: 0, inSubgraphs: 0, inFunctions: 0 };
  let subgraphs = 0;
  const graphOutputsTouched = new Set<Weight>();

  const countOp = (n: NodeProto, inSubgraph: boolean) => {
    const key = qualifiedOp(n);
    let c = ops.get(key);
    if (!c) ops.set(key, (c = { op: key, count: 0, inSubgraphs: 0 }));
    c.count++;
    if (inSubgraph) c.inSubgraphs++;
  };

  /** Registers the weights defined by a node list's nodes (Constants and tensor attributes). */
  const nodeWeights = (n: NodeProto, inSubgraph: boolean, scope: Scope | undefined) => {
    if (isConstantNode(n)) {
      const w = constantWeight(n, inSubgraph);
      if (w) {
        weights.push(w);
        for (const o of w.names) scope?.define(o, w);
        return;
      }
    }
    for (const o of n.output) scope?.define(o, null);
    for (const a of n.attribute) {
      for (const w of attributeWeights(a, inSubgraph)) {
        w.consumer = qualifiedOp(n); // the node holding it is what uses it
        weights.push(w);
      }
    }
  };

  const visitGraph = (g: GraphProto, outer: Scope | undefined, inSubgraph: boolean) => {
    const scope = new Scope(outer);
    for (const v of g.input) scope.define(v.name ?? '', null);
    for (const t of g.initializer) {
      const w = describeTensor(t, 'initializer', inSubgraph, t.name ? [t.name] : []);
      weights.push(w);
      if (t.name) scope.define(t.name, w); // an initializer that is also an input is still its default
    }
    for (const s of g.sparseInitializer) {
      const name = s.values?.name ?? '';
      const w = describeSparse(s, 'initializer', inSubgraph, name ? [name] : []);
      weights.push(w);
      if (name) scope.define(name, w);
    }
    // Definitions first (a graph's nodes may be listed out of order), then reads in document order.
    for (const n of g.node) {
      nodes.total++;
      if (inSubgraph) nodes.inSubgraphs++;
      else nodes.mainGraph++;
      countOp(n, inSubgraph);
      nodeWeights(n, inSubgraph, scope);
    }
    for (const n of g.node) {
      const op = qualifiedOp(n);
      for (const i of n.input) {
        const w = i ? scope.lookup(i) : undefined;
        if (w && w.consumer === undefined) w.consumer = op;
      }
      for (const sub of subgraphsOf(n)) {
        subgraphs++;
        visitGraph(sub, scope, true);
      }
    }
    for (const o of g.output) {
      const w = o.name ? scope.lookup(o.name) : undefined;
      if (w) graphOutputsTouched.add(w);
    }
  };

  if (model.graph) visitGraph(model.graph, undefined, false);
  for (const t of model.trainingInfo) {
    if (t.initialization) visitGraph(t.initialization, undefined, false);
    if (t.algorithm) visitGraph(t.algorithm, undefined, false);
  }
  for (const f of model.functions) {
    const scope = new Scope();
    for (const n of f.node) {
      nodes.total++;
      nodes.inFunctions++;
      countOp(n, true);
      nodeWeights(n, true, scope);
    }
    for (const n of f.node) {
      for (const i of n.input) {
        const w = i ? scope.lookup(i) : undefined;
        if (w && w.consumer === undefined) w.consumer = qualifiedOp(n);
      }
    }
  }

  // ---- tallies
  const zero = (): WeightTally => ({ tensors: 0, params: 0, bytes: 0 });
  const add = (t: WeightTally, w: Weight) => {
    t.tensors++;
    t.params += w.params;
    t.bytes += w.bytes;
  };
  const total = zero();
  const byOp = new Map<string, ByOp>();
  const byDtype = new Map<string, ByDtype>();
  const byLocation: Record<WeightLocation, LocationTally> = {
    initializer: { ...zero(), inSubgraphs: zero() },
    constant: { ...zero(), inSubgraphs: zero() },
    attribute: { ...zero(), inSubgraphs: zero() },
  };
  const external = { ...zero(), files: [] as ExternalFileReport[] };
  const files = new Map<string, ExternalFileReport>();
  for (const w of weights) {
    add(total, w);
    const op = w.consumer ?? (graphOutputsTouched.has(w) ? '(graph output)' : '(unused)');
    let bo = byOp.get(op);
    if (!bo) byOp.set(op, (bo = { op, ...zero() }));
    add(bo, w);
    let bd = byDtype.get(w.dtype);
    if (!bd) byDtype.set(w.dtype, (bd = { dtype: w.dtype, ...zero() }));
    add(bd, w);
    add(byLocation[w.location], w);
    if (w.inSubgraph) add(byLocation[w.location].inSubgraphs, w);
    if (w.external) {
      add(external, w);
      let f = files.get(w.external.location);
      if (!f) files.set(w.external.location, (f = { location: w.external.location, tensors: 0, bytes: 0, extent: 0 }));
      f.tensors++;
      f.bytes += w.external.length;
      f.extent = Math.max(f.extent, w.external.offset + w.external.length);
    }
  }
  for (const f of files.values()) {
    if (opts.statExternal) f.sizeOnDisk = opts.statExternal(f.location) ?? null;
    external.files.push(f);
  }
  const bySize = <T extends WeightTally>(a: T, b: T) => b.bytes - a.bytes || b.params - a.params;

  const g = model.graph;
  const initNames = new Set((g?.initializer ?? []).map((t) => t.name));
  const inputs = (g?.input ?? []).filter((v) => !initNames.has(v.name)).map(valueReport);

  const notes: string[] = [];
  const cSub = byLocation.constant.inSubgraphs;
  if (cSub.tensors > 0) {
    notes.push(
      `${fmt(cSub.tensors)} of ${fmt(byLocation.constant.tensors)} weight tensors (${fmt(cSub.params)} of ${fmt(total.params)} parameters) live in Constant nodes inside subgraphs (If/Loop/Scan bodies), not in initializers`,
    );
  } else if (byLocation.constant.tensors > 0 && byLocation.constant.params > byLocation.initializer.params) {
    notes.push(`most parameters live in Constant nodes, not in initializers`);
  }
  const iSub = byLocation.initializer.inSubgraphs;
  if (iSub.tensors > 0) notes.push(`${fmt(iSub.tensors)} initializers (${fmt(iSub.params)} parameters) live inside subgraphs`);
  if (external.tensors > 0) {
    notes.push(`${fmt(external.tensors)} tensors (${fmt(external.bytes)} bytes) are stored in ${files.size} external data file${files.size === 1 ? '' : 's'}`);
    for (const f of external.files) if (f.sizeOnDisk === null) notes.push(`external data file "${f.location}" is missing`);
    for (const f of external.files) if (typeof f.sizeOnDisk === 'number' && f.sizeOnDisk < f.extent) notes.push(`external data file "${f.location}" is ${f.sizeOnDisk} bytes but tensors reference up to byte ${f.extent}`);
  }
  const initInputs = (g?.input ?? []).filter((v) => initNames.has(v.name)).length;
  if (initInputs > 0) notes.push(`${initInputs} initializers are also graph inputs (callers may override them)`);

  return {
    file: opts.file,
    fileBytes: opts.fileBytes,
    irVersion: num(model.irVersion),
    producer: { name: model.producerName, version: model.producerVersion },
    domain: model.domain,
    modelVersion: num(model.modelVersion),
    graphName: g?.name,
    opsets: model.opsetImport.map((o) => ({ domain: o.domain === undefined || o.domain === '' ? 'ai.onnx' : o.domain, version: Number(o.version ?? 0) })),
    metadata: model.metadataProps.map((p) => ({ key: p.key ?? '', value: p.value ?? '' })),
    inputs,
    outputs: (g?.output ?? []).map(valueReport),
    initializerInputs: initInputs,
    nodes,
    subgraphs,
    functions: model.functions.length,
    ops: [...ops.values()].sort((a, b) => b.count - a.count || (a.op < b.op ? -1 : 1)),
    weights: {
      total,
      byOp: [...byOp.values()].sort(bySize),
      byDtype: [...byDtype.values()].sort(bySize),
      byLocation,
      external,
    },
    notes,
  };
}
