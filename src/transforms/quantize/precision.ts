/**
 * Mixed precision: one layer's precision (`int4:32`, `int8`, `float16`, `float32`, see LayerPrecision)
 * turned into what the quantize step does with it.
 *
 *   int4:B   the recipe's block, dtype int4 (uint4 when the recipe asked for an unsigned type), block B
 *   int8     8-bit per channel (uint8 when unsigned)
 *   float16  the weight stored as float16, Cast to float32 before its readers (2 bytes per weight;
 *            the op itself still computes in float32, so nothing else of the graph changes)
 *   float32  left as is
 */
import { DataType } from '../../onnx/dtypes.js';
import { makeAttribute, makeNode } from '../../onnx/graph.js';
import { makeTensor } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto } from '../../onnx/types.js';
import type { LayerPrecision, QuantizeStep } from './config.js';
import type { Emitted } from './dq.js';
import type { GraphEdits } from './edits.js';
import { toFloat16Measured } from './float16.js';
import type { Target } from './select.js';

export type { LayerPrecision };

/** Every precision, fewest bytes first. */
export const PRECISIONS: readonly LayerPrecision[] = ['int4:16', 'int4:32', 'int4:64', 'int4:128', 'int8', 'float16', 'float32'];

/** Bits per weight a precision stores, scales included (fp32 scale per block; zero points ignored). */
export function bitsPerWeight(p: LayerPrecision, K = Infinity): number {
  if (p === 'float32') return 32;
  if (p === 'float16') return 16;
  if (p === 'int8') return 8 + 32 / Math.min(K, 1e9);
  const block = Number(p.slice(5));
  return 4 + 32 / block;
}

/** The precision a recipe block asks for every layer (undefined: float16 for the whole model, or auto). */
export function requestedPrecision(params: QuantizeStep): LayerPrecision | undefined {
  if (params.dtype === 'float16' || params.dtype === 'auto') return undefined;
  if (params.dtype === 'int8' || params.dtype === 'uint8') return 'int8';
  return (typeof params.granularity === 'number' ? `int4:${params.granularity}` : 'int4:32') as LayerPrecision;
}

/** The step parameters one layer is quantized with under precision `p` (int4 / int8 only). */
export function paramsFor(params: QuantizeStep, p: LayerPrecision): QuantizeStep {
  const unsigned = params.dtype.startsWith('u');
  if (p === 'int8') {
    const granularity = params.dtype === 'int8' || params.dtype === 'uint8' ? params.granularity : 'per-channel';
    return { ...params, dtype: unsigned ? 'uint8' : 'int8', granularity };
  }
  if (p.startsWith('int4:')) {
    return { ...params, dtype: unsigned ? 'uint4' : 'int4', granularity: Number(p.slice(5)) };
  }
  throw new Error(`paramsFor(${p}): not an integer precision`);
}

/** The delivered precision of a quantized layer, in LayerPrecision's notation. */
export function deliveredPrecision(bits: 4 | 8, granularity: 'per-tensor' | 'per-channel' | number): string {
  if (bits === 8) return granularity === 'per-tensor' ? 'int8:tensor' : 'int8';
  return typeof granularity === 'number' ? `int4:${granularity}` : `int4:${granularity === 'per-tensor' ? 'tensor' : 'channel'}`;
}

/**
 * Stores a weight as float16 with a Cast back to float32 before its readers (one Cast per graph that
 * reads it, placed before the first reader, as DequantizeLinear is in dq.ts).
 */
export function emitFloat16Weight(t: Target, w: Float32Array, edits: GraphEdits): Emitted & { error: number } {
  const { values: h, error } = toFloat16Measured(w);
  const name = edits.addTensor(t.site, `${t.weight}_float16`, makeTensor('', DataType.FLOAT16, t.shape, h));
  const firstUse = new Map<GraphProto, NodeProto>();
  for (const u of t.uses) if (!firstUse.has(u.graph)) firstUse.set(u.graph, u.node);
  for (const [graph, node] of firstUse) {
    const out = edits.names.unique(`${t.weight}_float32`);
    edits.insertBefore(graph, node, [makeNode('Cast', [name], [out], { name: edits.names.unique(`${t.weight}_Cast`), attributes: [makeAttribute('to', DataType.FLOAT, true)] })]);
    for (const u of t.uses) if (u.graph === graph) u.node.input[u.input] = out;
  }
  edits.removeWeight(t.site);
  return { bytesAfter: h.length * 2, dtypeAfter: 'float16', error };
}
