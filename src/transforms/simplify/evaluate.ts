/**
 * Runs constant subgraphs in onnxruntime-node: the nodes become a small model whose inputs are
 * initializers and whose outputs are every value the nodes produce. ORT computes each op exactly as it
 * would in the full model, so folding never changes a value (unlike a JS re-implementation of each op).
 *
 * When the batch model fails (an op ORT cannot run alone, a type the JS API cannot return), the nodes
 * are run one by one and those that fail are left in the graph.
 */
import type * as ort from 'onnxruntime-node';
import { encodeModelToBytes } from '../../onnx/codec.js';
import { dataTypeFromName } from '../../onnx/dtypes.js';
import { namedValue } from '../../onnx/edit.js';
import { makeGraph } from '../../onnx/graph.js';
import { makeTensor, tensorBytes, type TypedArray } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';

const SESSION: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  // The point is to compute each op as written; ORT's own folding would give the same values anyway.
  graphOptimizationLevel: 'disabled',
  logSeverityLevel: 4,
};

function toTensorProto(name: string, t: ort.Tensor): TensorProto | undefined {
  if (t.type === 'string') return undefined;
  const dt = dataTypeFromName(t.type);
  if (dt === undefined) return undefined;
  const data = t.data as TypedArray;
  // Copy: the ORT output buffer is not ours to keep.
  const bytes = new Uint8Array(data.byteLength);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return makeTensor(name, dt, t.dims.map(Number), bytes);
}

async function runOnce(template: ModelProto, nodes: NodeProto[], inputs: Map<string, TensorProto>): Promise<Map<string, TensorProto>> {
  const needed = new Set<string>();
  for (const n of nodes) for (const i of n.input) if (i) needed.add(i);
  const produced = new Set(nodes.flatMap((n) => n.output.filter(Boolean)));
  const inits: TensorProto[] = [];
  for (const name of needed) {
    if (produced.has(name)) continue;
    const t = inputs.get(name);
    if (!t) throw new Error(`no constant for ${name}`);
    // A tensor still in the model file (lazy read) goes to onnxruntime with its bytes.
    inits.push(t.lazyFile ? { ...t, name, rawData: tensorBytes(t), dataLocation: undefined, externalData: [], lazyFile: undefined } : { ...t, name });
  }
  const outputs = [...produced].map(namedValue);
  const model: ModelProto = {
    irVersion: Math.max(Number(template.irVersion ?? 7), 4),
    opsetImport: template.opsetImport,
    metadataProps: [],
    trainingInfo: [],
    functions: template.functions,
    graph: makeGraph('fold', nodes, [], outputs, inits),
  };
  // Loaded here, not with the module: a model with nothing to fold never loads onnxruntime's native library.
  const { createSession } = await import('../../runtime/session.js');
  const session = await createSession(encodeModelToBytes(model), SESSION);
  try {
    const result = await session.run({});
    const out = new Map<string, TensorProto>();
    for (const name of produced) {
      const t = result[name];
      const proto = t && toTensorProto(name, t);
      if (!proto) throw new Error(`cannot read ${name} back`);
      out.set(name, proto);
    }
    return out;
  } finally {
    await session.release();
  }
}

/**
 * Values of every output of `nodes` (in topological order), computed from the constants in `inputs`.
 * Nodes that cannot be evaluated (and those depending on them) are missing from the result.
 */
export async function evaluateNodes(template: ModelProto, nodes: NodeProto[], inputs: Map<string, TensorProto>): Promise<Map<string, TensorProto>> {
  if (nodes.length === 0) return new Map();
  try {
    return await runOnce(template, nodes, inputs);
  } catch {
    const known = new Map(inputs);
    const out = new Map<string, TensorProto>();
    for (const n of nodes) {
      if (n.input.some((i) => i && !known.has(i))) continue;
      try {
        for (const [k, v] of await runOnce(template, [n], known)) {
          known.set(k, v);
          out.set(k, v);
        }
      } catch {
        // left in the graph
      }
    }
    return out;
  }
}
