/**
 * Constant folding: nodes whose inputs are all constants are computed once, in onnxruntime-node
 * (evaluate.ts), and replaced by initializers. Shape subgraphs fold too: `Shape(x)` is constant when
 * x's shape is static (shapes.ts), and `Gather(Shape(x), i)`, `Slice(Shape(x), …)` when the dims they
 * pick are, even if other dims of x are symbolic (a batch dim).
 *
 * Never folded: random ops, (De)QuantizeLinear (ORT fuses them with the op that reads them, and folding
 * would store the weights in float), ops with subgraphs, sequences, other domains, and nodes whose
 * results are graph outputs. A fold that would store more bytes than it removes is skipped: outputs
 * over 1 KiB that are larger than their constant inputs (ConstantOfShape, Expand, Tile, Cast to a wider
 * type), or that read a large constant something else also reads (a tied embedding's Transpose would
 * store the table twice).
 */
import { DataType } from '../../onnx/dtypes.js';
import { GraphIndex, opsetVersion, topologicalSort } from '../../onnx/graph.js';
import { lazyRange, makeTensor } from '../../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';
import { forEachGraph, subgraphsOf } from '../../onnx/walk.js';
import { evaluateNodes } from './evaluate.js';
import { constantOf, copyModel, forEachScope, isDefaultDomain, type PassResult, type SimplifyPass } from './pass.js';
import { inferShapes } from './shapes.js';

/** Outputs up to this size are always worth folding. */
const SMALL_BYTES = 1024;
const MAX_ROUNDS = 10;

const NEVER = new Set([
  'Constant', 'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli',
  'QuantizeLinear', 'DequantizeLinear', 'DynamicQuantizeLinear', 'SplitToSequence', 'ConcatFromSequence',
]);
/** Ops that pass an integer tensor's element type through (for values known from shapes). */
const PASS_TYPE = new Set(['Gather', 'Slice', 'Concat', 'Unsqueeze', 'Squeeze', 'Identity', 'Reshape']);

function foldable(n: NodeProto): boolean {
  const op = n.opType ?? '';
  return (
    isDefaultDomain(n) &&
    !NEVER.has(op) &&
    !op.startsWith('Sequence') &&
    !op.startsWith('Optional') &&
    subgraphsOf(n).length === 0 &&
    n.output.some(Boolean)
  );
}

const bytesOf = (t: TensorProto) => (t.lazyFile ? lazyRange(t).length : (t.rawData?.byteLength ?? 0));
const isFloat = (t: TensorProto | undefined) => t?.dataType === DataType.FLOAT || t?.dataType === DataType.FLOAT16 || t?.dataType === DataType.BFLOAT16 || t?.dataType === DataType.DOUBLE;

/** One round: returns the number of nodes folded. */
async function foldRound(model: ModelProto, g: GraphProto, outer: GraphIndex | undefined): Promise<number> {
  topologicalSort(g);
  const idx = new GraphIndex(g, outer);
  const opset = opsetVersion(model) ?? 1;
  const info = inferShapes(g, opset, (name) => constantOf(idx, name));
  const constant = (name: string) => constantOf(idx, name);

  // Element types of integer values known from shapes (ints tracking does not carry them).
  const intType = new Map<string, number>();
  const inputs = new Map<string, TensorProto>();
  const known = new Set<string>();
  const fromShapes = new Set<NodeProto>();
  const candidates: NodeProto[] = [];
  for (const n of g.node) {
    const op = n.opType ?? '';
    for (const i of n.input) {
      const t = i ? constant(i) : undefined;
      if (t) {
        known.add(i);
        if (!inputs.has(i)) inputs.set(i, t);
        if (t.dataType === DataType.INT64 || t.dataType === DataType.INT32) intType.set(i, t.dataType);
      }
    }
    if (op === 'Constant' || !isDefaultDomain(n)) continue;
    const out = n.output[0];
    if (op === 'Shape' || op === 'Size') intType.set(out, DataType.INT64);
    else if (op === 'Cast') intType.set(out, Number(n.attribute.find((a) => a.name === 'to')?.i ?? 0));
    else if (PASS_TYPE.has(op) && intType.has(n.input[0])) intType.set(out, intType.get(n.input[0])!);

    const allConstant = n.input.every((i) => !i || known.has(i));
    if (allConstant && foldable(n)) {
      candidates.push(n);
      for (const o of n.output) if (o) known.add(o);
      continue;
    }
    // Not all inputs constant, but the value is known from static shapes.
    const v = info.ints.get(out);
    const dt = intType.get(out);
    if (n.output.length === 1 && v && v.values.every((d) => typeof d === 'number') && (dt === DataType.INT64 || dt === DataType.INT32) && !idx.isGraphOutput(out)) {
      const data = dt === DataType.INT64 ? BigInt64Array.from(v.values as number[], (x) => BigInt(x)) : Int32Array.from(v.values as number[]);
      inputs.set(out, makeTensor(out, dt, v.scalar ? [] : [v.values.length], data));
      known.add(out);
      fromShapes.add(n);
    }
  }
  if (candidates.length === 0 && fromShapes.size === 0) return 0;

  const values = await evaluateNodes(model, candidates, inputs);
  for (const n of fromShapes) values.set(n.output[0], inputs.get(n.output[0])!);

  // Accept in order: a node folds when its inputs are original constants or folded values.
  const accepted = new Set<NodeProto>();
  const folded = new Set<string>();
  const original = (i: string) => !!constant(i);
  const candidateSet = new Set(candidates);
  for (const n of g.node) {
    if (!fromShapes.has(n) && !candidateSet.has(n)) continue;
    const outs = n.output.filter(Boolean);
    if (outs.some((o) => !values.has(o) || idx.isGraphOutput(o))) continue;
    if (!fromShapes.has(n)) {
      if (n.input.some((i) => i && !original(i) && !folded.has(i))) continue;
      const outBytes = outs.reduce((s, o) => s + bytesOf(values.get(o)!), 0);
      if (outBytes > SMALL_BYTES) {
        const ins = n.input.filter(Boolean);
        const inBytes = ins.reduce((s, i) => s + bytesOf(inputs.get(i) ?? values.get(i)!), 0);
        const shared = ins.some((i) => original(i) && bytesOf(inputs.get(i)!) > SMALL_BYTES && idx.consumersOf(i).length > 1);
        // A lookup in a large float table (position embeddings at fixed positions) stays: as a table the
        // quantize step stores it in 8 or 4 bits, as a folded activation it would stay float32.
        const table = n.opType === 'Gather' && isFloat(inputs.get(n.input[0])) && bytesOf(inputs.get(n.input[0])!) > SMALL_BYTES;
        if (outBytes > inBytes || shared || table) continue;
      }
    }
    accepted.add(n);
    for (const o of outs) folded.add(o);
  }
  if (accepted.size === 0) return 0;

  // Folded values something still reads become initializers; the folded nodes go.
  const have = new Set(g.initializer.map((t) => t.name));
  for (const name of folded) {
    const readers = idx.consumersOf(name).filter((c) => !accepted.has(c));
    if (readers.length === 0 || have.has(name)) continue;
    g.initializer.push({ ...values.get(name)!, name });
  }
  g.node = g.node.filter((n) => !accepted.has(n));
  return accepted.size;
}

/** Whether anything could fold: a Shape/Size node, or a foldable node whose inputs are all constants. */
function anyCandidate(model: ModelProto): boolean {
  const constants = new Set<string>();
  let found = false;
  if (!model.graph) return false;
  forEachGraph(model.graph, (g) => {
    if (found) return;
    const inputs = new Set(g.input.map((i) => i.name));
    for (const t of g.initializer) if (t.name && !inputs.has(t.name)) constants.add(t.name);
    for (const n of g.node) {
      if (n.opType === 'Constant') n.output.forEach((o) => constants.add(o));
      else if (n.opType === 'Shape' || n.opType === 'Size' || (foldable(n) && n.input.every((i) => !i || constants.has(i)))) found = true;
    }
  });
  return found;
}

export const foldConstants: SimplifyPass = {
  name: 'fold',
  async run(input: ModelProto): Promise<PassResult> {
    if (!anyCandidate(input)) return { model: input, changed: 0 };
    const { model } = copyModel(input);
    let changed = 0;
    await forEachScope(model, async (g, idx) => {
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const n = await foldRound(model, g, idx.outer);
        if (n === 0) break;
        changed += n;
      }
    });
    return changed ? { model, changed } : { model: input, changed: 0 };
  },
};
