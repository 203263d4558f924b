/**
 * Identity and inference-mode Dropout removal: readers of the node's output read its input instead.
 *
 * Graph outputs keep their names: when the output of an Identity is a graph output, the node that
 * produces its input is renamed to write the graph output directly (unless that value is itself a graph
 * input, initializer or another graph output, where the Identity stays). A Dropout is an identity when
 * its mask output is unused and training_mode is absent or a constant false.
 */
import { GraphIndex, replaceUses } from '../../onnx/graph.js';
import { tensorValues } from '../../onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto } from '../../onnx/types.js';
import { constantOf, copyModel, forEachScopeSync, isDefaultDomain, type PassResult, type SimplifyPass } from './pass.js';

function isIdentity(n: NodeProto, idx: GraphIndex): boolean {
  if (!isDefaultDomain(n) || !n.input[0]) return false;
  if (n.opType === 'Identity') return true;
  if (n.opType !== 'Dropout') return false;
  const mask = n.output[1];
  if (mask && (idx.consumersOf(mask).length || idx.isGraphOutput(mask))) return false;
  const training = n.input[2];
  if (!training) return true;
  const t = constantOf(idx, training);
  if (!t) return false;
  try {
    return tensorValues(t).every((v) => !v);
  } catch {
    return false;
  }
}

/** Removes one identity node; false when it has to stay. */
function bypass(g: GraphProto, idx: GraphIndex, n: NodeProto): boolean {
  const [x] = n.input;
  const y = n.output[0];
  if (!idx.isGraphOutput(y)) {
    replaceUses(g, y, x, n);
    return true;
  }
  const producer = idx.producer.get(x);
  if (!producer || idx.isGraphOutput(x) || idx.graphInputs.has(x) || idx.initializers.has(x)) return false;
  // The producer writes the graph output's name; readers of x read it under that name.
  replaceUses(g, x, y, n);
  producer.output = producer.output.map((o) => (o === x ? y : o));
  return true;
}

export const removeIdentities: SimplifyPass = {
  name: 'identity',
  run(input: ModelProto): PassResult {
    const { model } = copyModel(input);
    let changed = 0;
    forEachScopeSync(model, (g, first) => {
      let idx = first;
      const removed = new Set<NodeProto>();
      for (const n of g.node.filter((m) => m.opType === 'Identity' || m.opType === 'Dropout')) {
        if (!isIdentity(n, idx)) continue;
        const renamesOutput = idx.isGraphOutput(n.output[0]);
        if (!bypass(g, idx, n)) continue;
        removed.add(n);
        changed++;
        // Renaming a producer's output changes the index; readers moving to x do not affect what it answers.
        if (renamesOutput) {
          g.node = g.node.filter((m) => !removed.has(m));
          idx = new GraphIndex(g, first.outer);
        }
      }
      g.node = g.node.filter((m) => !removed.has(m));
    });
    return changed ? { model, changed } : { model: input, changed: 0 };
  },
};
