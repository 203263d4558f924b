/**
 * onnxruntime as a matrix engine: one tiny Gemm model per (element type, transA, transB), inputs with
 * symbolic dims, so any op(A)·op(B) in float32 or float64 runs in ORT's BLAS (FACTS.md: a 768×3072 by
 * 3072×64 product takes ~2 ms there against ~500 ms in JS loops).
 *
 * Layout: row-major; `a` is rows×cols as stored (before transA), likewise `b`.
 */
import * as ort from 'onnxruntime-node';
import { DataType } from '../onnx/dtypes.js';
import { makeAttribute, makeNode } from '../onnx/graph.js';
import type { ModelProto, ValueInfoProto } from '../onnx/types.js';
import { openSession, runSession } from '../runtime/session.js';

export type FloatArray = Float32Array | Float64Array;

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
}

function io(name: string, elemType: number, dims: string[]): ValueInfoProto {
  return { name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimParam: d })) } } }, metadataProps: [] };
}

function gemmModel(elemType: number, transA: boolean, transB: boolean): ModelProto {
  return {
    irVersion: 8,
    producerName: 'unplugin-onnx-compress',
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
    graph: {
      name: 'gemm',
      node: [makeNode('Gemm', ['a', 'b'], ['c'], { attributes: [makeAttribute('transA', transA ? 1 : 0, true), makeAttribute('transB', transB ? 1 : 0, true)] })],
      initializer: [],
      input: [io('a', elemType, ['a0', 'a1']), io('b', elemType, ['b0', 'b1'])],
      output: [io('c', elemType, ['c0', 'c1'])],
      valueInfo: [],
      quantizationAnnotation: [],
      sparseInitializer: [],
      metadataProps: [],
    },
  };
}

export class GemmEngine {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  constructor(private readonly threads = 1) {}

  private session(f64: boolean, transA: boolean, transB: boolean): Promise<ort.InferenceSession> {
    const key = `${f64}:${transA}:${transB}`;
    let s = this.sessions.get(key);
    if (!s) {
      s = openSession(gemmModel(f64 ? DataType.DOUBLE : DataType.FLOAT, transA, transB), { intraOpThreads: this.threads }).then((o) => o.session);
      this.sessions.set(key, s);
    }
    return s;
  }

  /** op(A)·op(B); A stored rows×cols = aDims, B likewise. Both must have the same element type. */
  async gemm<T extends FloatArray>(a: T, aDims: [number, number], b: T, bDims: [number, number], opts: GemmOptions = {}): Promise<T> {
    const f64 = a instanceof Float64Array;
    const type = f64 ? 'float64' : 'float32';
    const s = await this.session(f64, !!opts.transA, !!opts.transB);
    const out = await runSession(s, { a: new ort.Tensor(type, a, aDims), b: new ort.Tensor(type, b as T, bDims) }, ['c']);
    return out.c.data as T;
  }

  /** A·B for A m×k and B k×n. */
  matmul<T extends FloatArray>(a: T, m: number, k: number, b: T, n: number): Promise<T> {
    return this.gemm(a, [m, k], b, [k, n]);
  }

  /** Xᵀ·X for X rows×cols (a cols×cols matrix). */
  gram<T extends FloatArray>(x: T, rows: number, cols: number): Promise<T> {
    return this.gemm(x, [rows, cols], x, [rows, cols], { transA: true });
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }
}
