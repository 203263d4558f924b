/**
 * Applying channel plans: cut constant tensors along an axis (keeping whole channels of `block`
 * consecutive elements), fix Reshape shape constants, and write each new tensor back — in place when
 * only the edited node reads it, else as a new initializer for that node alone.
 */
import { DataType } from '../../onnx/dtypes.js';
import { NameScope, type GraphIndex } from '../../onnx/graph.js';
import { dimsOf, makeTensor, tensorValues, type TypedArray } from '../../onnx/tensor.js';
import type { GraphProto, NodeProto, TensorProto } from '../../onnx/types.js';
import { readCount, replaceWeight } from './select.js';

/** Keeps channels `keep` (ascending) along `axis`; channel c spans elements [c·block, (c+1)·block). */
export function sliceAxis(values: TypedArray, dims: readonly number[], axis: number, keep: readonly number[], block: number): { values: TypedArray; dims: number[] } {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const size = dims[axis];
  const newSize = keep.length * block;
  const Ctor = values.constructor as new (n: number) => TypedArray;
  const out = new Ctor(outer * newSize * inner);
  const run = block * inner;
  let at = 0;
  for (let o = 0; o < outer; o++) {
    const base = o * size * inner;
    for (const c of keep) {
      const from = base + c * run;
      (out as Float32Array).set((values as Float32Array).subarray(from, from + run), at);
      at += run;
    }
  }
  const newDims = [...dims];
  newDims[axis] = newSize;
  return { values: out, dims: newDims };
}

export interface KeptEdit {
  node: NodeProto;
  slot: number;
  axis: number;
  block: number;
  keep: number[];
}

export interface ReshapeEdit {
  node: NodeProto;
  index: number;
  /** The new size of that dim. */
  size: number;
}

export interface EditedTensor {
  name: string;
  before: number[];
  after: number[];
}

/**
 * Groups edits by (node, slot) and rewrites each tensor once with all its cuts. Returns the tensors
 * written, for reports.
 */
export function applyEdits(g: GraphProto, index: GraphIndex, scope: NameScope, edits: KeptEdit[], reshapes: ReshapeEdit[]): EditedTensor[] {
  const groups = new Map<NodeProto, Map<number, KeptEdit[]>>();
  for (const e of edits) {
    const bySlot = groups.get(e.node) ?? new Map<number, KeptEdit[]>();
    groups.set(e.node, bySlot);
    bySlot.set(e.slot, [...(bySlot.get(e.slot) ?? []), e]);
  }
  const written: EditedTensor[] = [];
  const write = (node: NodeProto, slot: number, make: (t: TensorProto) => TensorProto) => {
    const name = node.input[slot];
    const site = index.weight(name)!;
    const t = make(site.tensor);
    if (readCount(index, name) === 1) {
      replaceWeight(site, t);
    } else {
      t.name = scope.unique(`${name}_pruned`);
      g.initializer.push(t);
      node.input[slot] = t.name;
    }
    written.push({ name: t.name ?? name, before: dimsOf(site.tensor), after: dimsOf(t) });
  };
  for (const [node, bySlot] of groups) {
    for (const [slot, list] of bySlot) {
      write(node, slot, (t) => {
        let values = tensorValues(t);
        let dims = dimsOf(t);
        for (const e of list) ({ values, dims } = sliceAxis(values, dims, e.axis, e.keep, e.block));
        return makeTensor(t.name ?? '', t.dataType ?? DataType.FLOAT, dims, values);
      });
    }
  }
  for (const r of reshapes) {
    write(r.node, 1, (t) => {
      const v = BigInt64Array.from(tensorValues(t) as BigInt64Array);
      v[r.index] = BigInt(r.size);
      return makeTensor(t.name ?? '', DataType.INT64, dimsOf(t), v);
    });
  }
  return written;
}
