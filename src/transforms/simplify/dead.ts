/**
 * Dead code: nodes whose results nothing reads (graph outputs and subgraph reads count), then
 * initializers and value_info entries nothing refers to. Graph inputs are kept (they are the model's
 * signature), and so are initializers that are also graph inputs.
 */
import { removeDeadCode } from '../../onnx/graph.js';
import type { ModelProto } from '../../onnx/types.js';
import { copyModel, type PassResult, type SimplifyPass } from './pass.js';

export const removeDeadNodes: SimplifyPass = {
  name: 'dead-code',
  run(input: ModelProto): PassResult {
    const { model, graph } = copyModel(input);
    if (!graph) return { model: input, changed: 0 };
    const initializers = graph.initializer.length;
    const removed = removeDeadCode(graph);
    const changed = removed + (initializers - graph.initializer.length);
    return changed ? { model, changed } : { model: input, changed: 0 };
  },
};
