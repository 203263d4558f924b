/**
 * A float64 matrix product in onnxruntime (one MatMul node with symbolic dims, one session reused for
 * every shape), for GPTQ's blocked factorizations (linalg.ts) and lazy updates. Products below ~2M
 * multiply-adds stay in JS, where the session call would cost more than the arithmetic.
 */
import * as ort from 'onnxruntime-node';
import { encodeModelToBytes } from '../../onnx/codec.js';
import { DataType } from '../../onnx/dtypes.js';
import { makeNode } from '../../onnx/graph.js';
import type { ModelProto, ValueInfoProto } from '../../onnx/types.js';
import { openSession, runSession } from '../../runtime/session.js';
import { matmulJs, type MatMul } from './linalg.js';

function io(name: string, dims: string[]): ValueInfoProto {
  return { name, type: { tensorType: { elemType: DataType.DOUBLE, shape: { dim: dims.map((d) => ({ dimParam: d })) } } }, metadataProps: [] };
}

/** Call close() when done. */
export async function ortMatMul(threads = 1): Promise<{ matmul: MatMul; close: () => Promise<void> }> {
  const model: ModelProto = {
    irVersion: 8,
    producerName: 'unplugin-onnx-compress',
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
    graph: {
      name: 'matmul_f64',
      node: [makeNode('MatMul', ['A', 'B'], ['C'])],
      initializer: [],
      input: [io('A', ['m', 'k']), io('B', ['k', 'n'])],
      output: [io('C', ['m', 'n'])],
      valueInfo: [],
      quantizationAnnotation: [],
      sparseInitializer: [],
      metadataProps: [],
    },
  };
  const { session } = await openSession(encodeModelToBytes(model), { intraOpThreads: threads });
  const matmul: MatMul = async (a, m, k, b, n) => {
    if (m * k * n < 2_000_000) return matmulJs(a, m, k, b, n);
    const out = await runSession(session, { A: new ort.Tensor('float64', a, [m, k]), B: new ort.Tensor('float64', b, [k, n]) });
    return out.C.data as Float64Array;
  };
  return { matmul, close: () => session.release() };
}

