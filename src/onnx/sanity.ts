/**
 * A decoded source must have something to compute: decodeModelFile already refuses empty and non-ONNX
 * files; a graph that is missing or has no outputs would otherwise only fail later, in onnxruntime, with
 * a message about the compressed model.
 */
import { CompressError } from '../errors.js';
import type { ModelProto } from './types.js';

export function requireGraph(model: ModelProto, file: string): void {
  const g = model.graph;
  if (!g) throw new CompressError('model', 'the file holds no ONNX graph', { file });
  if (!g.output.length) throw new CompressError('model', "the model's graph has no outputs: nothing to compute", { file });
}
