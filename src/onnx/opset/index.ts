/**
 * Raising a model's default-domain (ai.onnx) opset: every node whose op changed its signature
 * between the model's opset and the target is rewritten to the newer form, with the same meaning
 * (attributes that became inputs, deprecated ops replaced, changed defaults written out). The same
 * changes ONNX's version converter knows, one adapter family per file:
 *
 *   inputs.ts         Reshape 5, Slice 10, TopK 10, Clip 11, Pad 11, Dropout 7/12, Squeeze/Unsqueeze/
 *                     ReduceSum 13, Split 2/13/18, other Reduce* 18, DFT 20
 *   resize.ts         Upsample 7/9, Upsample → Resize 10, Resize 11
 *   normalization.ts  BatchNormalization 7/9/14, GroupNormalization 21, Softmax/LogSoftmax/Hardmax 13
 *   legacy.ts         numpy broadcasting 7 (Add…Less), Gemm 7, Concat 4, Cast 6, LpPool 2, Tile 6,
 *                     Scan 9, experimental ops removed at 10, Scatter → ScatterElements 11,
 *                     RoiAlign 16, GridSample 20
 *
 * Every other op only gained types or optional attributes whose defaults keep the old behaviour.
 * Subgraphs (If/Loop/Scan bodies) are converted too; other domains (com.microsoft, ai.onnx.ml) are
 * left as they are, and so are model-local functions, which carry their own opset imports (onnxruntime
 * runs a function importing opset 13 inside an opset-21 model). All or nothing: when one node cannot be converted the model is not touched and
 * the report names it.
 *
 *   const r = upgradeOpset(model, 13);   // r.unconvertible.length === 0 → model now imports opset 13
 */
import { DataType } from '../dtypes.js';
import { NameScope, opsetVersion } from '../graph.js';
import { dimsOf, tensorValues } from '../tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto, TypeProto } from '../types.js';
import { allGraphs, subgraphsOf } from '../walk.js';
import { Unconvertible, type AdaptContext, type Adapter } from './context.js';
import { inputAdapters } from './inputs.js';
import { legacyAdapters } from './legacy.js';
import { normalizationAdapters } from './normalization.js';
import { resizeAdapters } from './resize.js';

export { Unconvertible, type Adapter } from './context.js';

/** Every adapter, in the order of the opset each applies at. */
export const ADAPTERS: readonly Adapter[] = [...legacyAdapters, ...inputAdapters, ...resizeAdapters, ...normalizationAdapters].sort((a, b) => a.to - b.to);

/** The newest default-domain opset this converter knows the changes up to. */
export const NEWEST_OPSET = 21;

export interface UpgradeReport {
  from: number;
  to: number;
  irVersion: { from: number; to: number };
  /** One entry per change kind: op, the opset it applies at, what changed, and the nodes. */
  converted: { op: string; at: number; what: string; nodes: string[] }[];
  /** Nodes with no equivalent at the target opset (the model was left unchanged). */
  unconvertible: { op: string; node: string; reason: string }[];
}

/** The IR version that first allows each opset (onnx/helper.py VERSION_TABLE). */
function irVersionFor(opset: number): number {
  if (opset >= 21) return 10;
  if (opset >= 19) return 9;
  if (opset >= 15) return 8;
  if (opset >= 12) return 7;
  if (opset === 11) return 6;
  if (opset === 10) return 5;
  if (opset === 9) return 4;
  return 3;
}

const isDefaultDomain = (n: NodeProto) => (n.domain ?? '') === '' || n.domain === 'ai.onnx';

/**
 * Raises the default-domain opset to `target` when every node converts (see the file comment);
 * returns what was done or what stands in the way. `dryRun` only reports (the model is not touched). A model already at or above `target` is left alone.
 */
export function upgradeOpset(model: ModelProto, target: number, names: NameScope = new NameScope(model), opts: { dryRun?: boolean } = {}): UpgradeReport {
  const from = opsetVersion(model, '') ?? 1;
  const irFrom = Number(model.irVersion ?? 3);
  const report: UpgradeReport = { from, to: from, irVersion: { from: irFrom, to: irFrom }, converted: [], unconvertible: [] };
  if (target <= from) return report;
  if (target > NEWEST_OPSET) throw new Error(`opset ${target} is newer than the converter knows (${NEWEST_OPSET})`);
  const adapters = ADAPTERS.filter((a) => a.to > from && a.to <= target);
  const info = modelInfo(model);
  const converted = new Map<Adapter, string[]>();
  const rewritten = new Map<GraphProto, NodeProto[]>();
  for (const graph of allGraphs(model)) {
    const ctx = contextFor(graph, names, target, info);
    const out: NodeProto[] = [];
    for (const original of graph.node) {
      if (!isDefaultDomain(original) || !adapters.some((a) => a.op === original.opType)) {
        out.push(original);
        continue;
      }
      // Adapters edit a copy: the model stays untouched unless every node converts.
      let nodes: NodeProto[] = [{ ...original, input: [...original.input], output: [...original.output], attribute: [...original.attribute] }];
      // Helper nodes an adapter adds (Constants, Unsqueeze…) are written in the target's form already;
      // only the node itself (or what replaced it, e.g. Upsample → Resize) meets later adapters.
      let main = new Set(nodes);
      try {
        for (const a of adapters) {
          if (!nodes.some((n) => main.has(n) && n.opType === a.op && isDefaultDomain(n))) continue;
          const next = new Set<NodeProto>();
          let changed = false;
          nodes = nodes.flatMap((n) => {
            if (!main.has(n) || n.opType !== a.op || !isDefaultDomain(n)) return [n];
            const before = signature(n);
            const out = a.adapt(n, ctx);
            if (out.length !== 1 || out[0] !== n || signature(n) !== before) changed = true;
            for (const m of out.includes(n) ? [n] : out) next.add(m);
            return out;
          });
          main = new Set([...main].filter((n) => nodes.includes(n)).concat([...next]));
          if (!changed) continue;
          const list = converted.get(a) ?? [];
          list.push(original.name || `${original.opType} → ${original.output[0] ?? ''}`);
          converted.set(a, list);
        }
      } catch (e) {
        if (!(e instanceof Unconvertible)) throw e;
        report.unconvertible.push({ op: original.opType ?? '', node: original.name || original.output[0] || '', reason: e.message });
        nodes = [original];
      }
      out.push(...nodes);
    }
    rewritten.set(graph, out);
  }
  for (const [a, nodes] of converted) report.converted.push({ op: a.op, at: a.to, what: a.what, nodes });
  if (report.unconvertible.length) {
    report.converted = [];
    return report;
  }
  if (opts.dryRun) {
    report.to = target;
    return report;
  }
  for (const [graph, nodes] of rewritten) graph.node = nodes;
  const entry = model.opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  if (entry) entry.version = target;
  else model.opsetImport.push({ domain: '', version: target });
  const ir = Math.max(irFrom, irVersionFor(target));
  model.irVersion = ir;
  report.to = target;
  report.irVersion.to = ir;
  return report;
}

/** What an adapter may change in place: op type, inputs, outputs and attributes (replaced, never edited). */
const attributeIds = new WeakMap<object, number>();
let nextAttributeId = 0;
function signature(n: NodeProto): string {
  const ids = n.attribute.map((a) => {
    let id = attributeIds.get(a);
    if (id === undefined) attributeIds.set(a, (id = nextAttributeId++));
    return id;
  });
  return JSON.stringify([n.opType, n.input, n.output, ids]);
}

/** Types, shapes, constants and readers of every value in the model (names are unique model-wide). */
interface ModelInfo {
  types: Map<string, TypeProto>;
  tensors: Map<string, TensorProto>;
  read: Set<string>;
}

function modelInfo(model: ModelProto): ModelInfo {
  const info: ModelInfo = { types: new Map(), tensors: new Map(), read: new Set() };
  for (const g of allGraphs(model)) {
    for (const v of [...g.input, ...g.valueInfo, ...g.output]) if (v.name && v.type) info.types.set(v.name, v.type);
    for (const v of g.output) if (v.name) info.read.add(v.name);
    for (const t of g.initializer) if (t.name) info.tensors.set(t.name, t);
    for (const n of g.node) {
      for (const i of n.input) if (i) info.read.add(i);
      if (n.opType === 'Constant' && isDefaultDomain(n)) {
        const t = n.attribute.find((a) => a.name === 'value')?.t;
        if (t && n.output[0]) info.tensors.set(n.output[0], t);
      }
      // Values a subgraph reads from outer scopes count as read.
      for (const sub of subgraphsOf(n)) for (const sn of sub.node) for (const i of sn.input) if (i) info.read.add(i);
    }
  }
  return info;
}

function contextFor(graph: GraphProto, names: NameScope, target: number, info: ModelInfo): AdaptContext {
  const shapeDims = (v: string): (number | undefined)[] | undefined => {
    const t = info.tensors.get(v);
    if (t) return dimsOf(t);
    const dims = info.types.get(v)?.tensorType?.shape?.dim;
    return dims?.map((d) => (d.dimValue !== undefined ? Number(d.dimValue) : undefined));
  };
  return {
    graph,
    names,
    target,
    elemType: (v) => info.tensors.get(v)?.dataType ?? info.types.get(v)?.tensorType?.elemType,
    rank: (v) => shapeDims(v)?.length,
    dims: (v) => {
      const d = shapeDims(v);
      return d && d.every((x) => x !== undefined) ? (d as number[]) : undefined;
    },
    constantValues: (v) => {
      const t = info.tensors.get(v);
      if (!t || t.dataType === DataType.STRING) return undefined;
      try {
        return Array.from(tensorValues(t) as ArrayLike<number | bigint>, Number);
      } catch {
        return undefined;
      }
    },
    isRead: (v) => info.read.has(v),
    constant: (base, tensor) => {
      const name = names.unique(base);
      const node: NodeProto = {
        input: [],
        output: [name],
        name: names.unique(`${name}_Constant`),
        opType: 'Constant',
        attribute: [{ name: 'value', type: 4, t: { ...tensor, name }, floats: [], ints: [], strings: [], tensors: [], graphs: [], typeProtos: [], sparseTensors: [] }],
        metadataProps: [],
      };
      info.tensors.set(name, node.attribute[0].t!);
      return { node, name };
    },
  };
}
