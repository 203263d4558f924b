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
import { constantOf, copyModel, forEachScopeSync, hasOp, isDefaultDomain, renameReads, type PassResult, type SimplifyPass } from './pass.js';

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

/**
 * An identity whose output is a graph output: the producer of its input writes the graph output
 * directly. False when it has to stay (its input is a graph input, initializer, outer-scope value or
 * another graph output).
 */
function renameIntoOutput(g: GraphProto, idx: GraphIndex, n: NodeProto): boolean {
  const [x] = n.input;
  const y = n.output[0];
  const producer = idx.producer.get(x);
  if (!producer || idx.isGraphOutput(x) || idx.graphInputs.has(x) || idx.initializers.has(x)) return false;
  replaceUses(g, x, y, n);
  producer.output = producer.output.map((o) => (o === x ? y : o));
  return true;
}

export const removeIdentities: SimplifyPass = {
  name: 'identity',
  run(input: ModelProto): PassResult {
    if (!hasOp(input, ['Identity', 'Dropout'])) return { model: input, changed: 0 };
    const { model } = copyModel(input);
    let changed = 0;
    forEachScopeSync(model, (g, idx) => {
      const identities = g.node.filter((m) => (m.opType === 'Identity' || m.opType === 'Dropout') && isIdentity(m, idx));
      if (!identities.length) return;
      const removed = new Set<NodeProto>();
      // Readers of y read x instead: all such renames in one sweep (chains resolved), not one sweep each.
      const renames = new Map<string, string>();
      for (const n of identities) {
        if (idx.isGraphOutput(n.output[0])) continue;
        renames.set(n.output[0], n.input[0]);
        removed.add(n);
      }
      const resolve = (name: string) => {
        let seen = 0;
        while (renames.has(name) && seen++ < renames.size) name = renames.get(name)!;
        return name;
      };
      for (const [from] of renames) renames.set(from, resolve(from));
      renameReads(g, renames);
      g.node = g.node.filter((m) => !removed.has(m));
      // Identities that write graph outputs: one at a time (each renames a producer).
      for (const n of identities) {
        if (removed.has(n)) continue;
        if (!renameIntoOutput(g, new GraphIndex(g, idx.outer), n)) continue;
        removed.add(n);
        g.node = g.node.filter((m) => m !== n);
      }
      changed += removed.size;
    });
    return changed ? { model, changed } : { model: input, changed: 0 };
  },
};
