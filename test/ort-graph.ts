/** onnxruntime in the tests: the graph it actually runs (what the static-quantization tests read back to prove fusion), and one run of a model. */
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

/** One run of `model` in a fresh session (`options`: the session options); outputs as float32 arrays by name. */
export async function runModel(model: ModelProto, feeds: Record<string, ort.Tensor>, options: ort.InferenceSession.SessionOptions = {}): Promise<Record<string, Float32Array>> {
  const s = await ort.InferenceSession.create(encodeModelToBytes(model), options);
  try {
    const r = await s.run(feeds);
    return Object.fromEntries(Object.entries(r).map(([k, t]) => [k, t.data as Float32Array]));
  } finally {
    await s.release();
  }
}
