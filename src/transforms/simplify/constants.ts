/**
 * Constant nodes of the main graph → initializers. Exporters (PyTorch's among them) write every
 * literal as a Constant node; as initializers they cost no node, later passes see them as weights, and
 * duplicates can be shared. Left alone: Constants whose value is a graph output, string and sparse
 * values, and models of IR version < 4 (initializers there must also be graph inputs).
 */
import { DataType } from '../../onnx/dtypes.js';
import { makeTensor } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';
import { copyModel, forEachScopeSync, hasOp, isDefaultDomain, type PassResult, type SimplifyPass } from './pass.js';

function valueOf(n: NodeProto, name: string): TensorProto | undefined {
  if (n.attribute.length !== 1) return undefined;
  const a = n.attribute[0];
  switch (a.name) {
    case 'value':
      return a.t && a.t.dataType !== DataType.STRING && (a.t.dataLocation !== 1 || a.t.lazyFile) ? { ...a.t, name } : undefined;
    case 'value_float':
      return makeTensor(name, DataType.FLOAT, [], new Float32Array([a.f ?? 0]));
    case 'value_floats':
      return makeTensor(name, DataType.FLOAT, [a.floats.length], Float32Array.from(a.floats));
    case 'value_int':
      return makeTensor(name, DataType.INT64, [], BigInt64Array.of(BigInt(a.i ?? 0)));
    case 'value_ints':
      return makeTensor(name, DataType.INT64, [a.ints.length], BigInt64Array.from(a.ints, (x) => BigInt(x)));
    default:
      return undefined;
  }
}

export const constantsToInitializers: SimplifyPass = {
  name: 'constants',
  run(input: ModelProto): PassResult {
    if (Number(input.irVersion ?? 0) < 4 || !hasOp(input, ['Constant'])) return { model: input, changed: 0 };
    const { model } = copyModel(input);
    let changed = 0;
    // Subgraphs too (Silero VAD keeps its weights as Constant nodes inside If branches).
    forEachScopeSync(model, (g) => {
      const outputs = new Set(g.output.map((o) => o.name));
      const taken = new Set([...g.initializer.map((t) => t.name), ...g.input.map((i) => i.name)]);
      g.node = g.node.filter((n) => {
        if (n.opType !== 'Constant' || !isDefaultDomain(n) || n.output.length !== 1) return true;
        const name = n.output[0];
        if (outputs.has(name) || taken.has(name)) return true;
        const t = valueOf(n, name);
        if (!t) return true;
        g.initializer.push(t);
        changed++;
        return false;
      });
    });
    return changed ? { model, changed } : { model: input, changed: 0 };
  },
};
