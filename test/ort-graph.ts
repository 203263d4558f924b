/** The graph onnxruntime actually runs: what the static-quantization tests read back to prove fusion. */
import * as ort from 'onnxruntime-node';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { readModel } from '../src/onnx/io.js';
import type { ModelProto } from '../src/onnx/types.js';

/** The op types of `model` after onnxruntime's graph optimizations (level all, CPU EP), with counts; the optimized graph is written to `file`. */
export async function optimizedOps(model: ModelProto, file: string): Promise<Record<string, number>> {
  const s = await ort.InferenceSession.create(encodeModelToBytes(model), { graphOptimizationLevel: 'all', optimizedModelFilePath: file, intraOpNumThreads: 1, logSeverityLevel: 3 });
  await s.release();
  const ops: Record<string, number> = {};
  for (const n of readModel(file).graph!.node) ops[n.opType!] = (ops[n.opType!] ?? 0) + 1;
  return ops;
}
