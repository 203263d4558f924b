/**
 * MatMul(A, B) + Add(·, C) → Gemm(A, B, C) when A is 2-D, B a 2-D constant [K, N] and C a constant of
 * shape [N] or [1, N] (so it broadcasts the same way in both forms). One node instead of two, and the
 * form every runtime has a fused kernel for.
 */
import { opsetVersion } from '../../onnx/graph.js';
import { dimsOf } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto } from '../../onnx/types.js';
import { constantOf, copyModel, forEachScopeSync, hasOp, isDefaultDomain, soleConsumer, type PassResult, type SimplifyPass } from './pass.js';
import { inferShapes } from './shapes.js';

export const matmulAddToGemm: SimplifyPass = {
  name: 'gemm',
  run(input: ModelProto): PassResult {
    const opset = opsetVersion(input) ?? 1;
    // Gemm's C broadcasts without the `broadcast` attribute from opset 7.
    if (opset < 7 || !hasOp(input, ['MatMul'])) return { model: input, changed: 0 };
    const { model } = copyModel(input);
    let changed = 0;
    forEachScopeSync(model, (g, idx) => {
      const { shapes } = inferShapes(g, opset, (name) => constantOf(idx, name));
      const removed = new Set<NodeProto>();
      for (const mm of g.node) {
        if (mm.opType !== 'MatMul' || !isDefaultDomain(mm)) continue;
        const a = shapes.get(mm.input[0]);
        const b = constantOf(idx, mm.input[1]);
        if (!a || a.length !== 2 || !b || b.dims.length !== 2) continue;
        const add = soleConsumer(idx, mm.output[0]);
        if (!add || add.opType !== 'Add' || !isDefaultDomain(add) || add.input[0] === add.input[1]) continue;
        const cName = add.input[0] === mm.output[0] ? add.input[1] : add.input[0];
        const c = constantOf(idx, cName);
        const n = dimsOf(b)[1];
        const cd = c && dimsOf(c);
        if (!c || c.dataType !== b.dataType || !cd || !((cd.length === 1 && cd[0] === n) || (cd.length === 2 && cd[0] === 1 && cd[1] === n))) continue;
        mm.opType = 'Gemm';
        mm.input = [mm.input[0], mm.input[1], cName];
        mm.output = [add.output[0]];
        removed.add(add);
      }
      g.node = g.node.filter((n) => !removed.has(n));
      changed += removed.size;
    });
    return changed ? { model, changed } : { model: input, changed: 0 };
  },
};
