/**
 * What logit distillation trains: float32 initializers that are the weights and biases of MatMul /
 * Gemm / Conv layers (a bias being the constant operand of an Add right after the layer), and the
 * scale and shift of LayerNormalization / BatchNormalization. Embedding tables, attention masks,
 * position tables and other constants stay fixed.
 *
 * Pruning masks: a parameter with ≥ 1 % exact zeros was pruned; its zeros stay zero (the gradient
 * and the update are multiplied by the mask).
 */
import { DataType } from '../../onnx/dtypes.js';
import { GraphIndex } from '../../onnx/graph.js';
import { dimsOf, tensorFloat32 } from '../../onnx/tensor.js';
import type { ModelProto } from '../../onnx/types.js';

export interface Trainable {
  name: string;
  dims: number[];
  /** Why it is trained: 'MatMul weight', 'Conv bias', 'LayerNormalization scale', … */
  role: string;
  /** 1 = may change, 0 = pruned (stays zero); absent when nothing was pruned. */
  mask?: Uint8Array;
}

const WEIGHT_SLOTS: Record<string, [number, string][]> = {
  MatMul: [[0, 'weight'], [1, 'weight']],
  Gemm: [[0, 'weight'], [1, 'weight'], [2, 'bias']],
  Conv: [[1, 'weight'], [2, 'bias']],
  LayerNormalization: [[1, 'scale'], [2, 'shift']],
  BatchNormalization: [[1, 'scale'], [2, 'shift']],
};
const LAYERS = new Set(['MatMul', 'Gemm', 'Conv']);

/** Fraction of exact zeros above which a parameter counts as pruned. */
export const PRUNED_ZEROS = 0.01;

export function selectTrainable(model: ModelProto): Trainable[] {
  const g = model.graph!;
  const index = new GraphIndex(g);
  const out = new Map<string, Trainable>();
  const consider = (name: string, role: string) => {
    if (!name || out.has(name)) return;
    const t = index.initializers.get(name);
    if (!t || t.dataType !== DataType.FLOAT || index.graphInputs.has(name)) return;
    const values = tensorFloat32(t);
    let zeros = 0;
    for (let i = 0; i < values.length; i++) if (values[i] === 0) zeros++;
    const p: Trainable = { name, dims: dimsOf(t), role };
    if (values.length > 1 && zeros >= PRUNED_ZEROS * values.length) p.mask = Uint8Array.from(values, (v) => (v === 0 ? 0 : 1));
    out.set(name, p);
  };
  for (const node of g.node) {
    const op = node.opType ?? '';
    // Slots that hold activations are no initializers: consider() passes over them.
    for (const [slot, what] of WEIGHT_SLOTS[op] ?? []) consider(node.input[slot], `${op} ${what}`);
    if (op === 'Add') {
      const [a, b] = node.input;
      const layerOf = (v: string) => index.producer.get(v)?.opType;
      if (index.initializers.has(b) && LAYERS.has(layerOf(a) ?? '')) consider(b, `${layerOf(a)} bias`);
      if (index.initializers.has(a) && LAYERS.has(layerOf(b) ?? '')) consider(a, `${layerOf(b)} bias`);
    }
  }
  return [...out.values()];
}
