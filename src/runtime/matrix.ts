/**
 * onnxruntime as the matrix engine: one tiny Gemm model per (element type, transA, transB), inputs with
 * symbolic dims, so any op(A)·op(B) in float32 or float64 runs in ORT's BLAS (a 768×3072 by 3072×64
 * product takes ~2 ms there against ~500 ms in JS loops; docs/facts.md, "Matrix products"). One session per form, reused
 * for every shape.
 *
 * `matrixEngine()` is the one place that picks the engine behind the linear algebra of src/linalg/.
 *
 * Layout: row-major; `a` is stored rows×cols = aDims (before transA), likewise `b`.
 */
import * as ort from 'onnxruntime-node';
import { checkDims, DenseEngine, HybridEngine, MatrixEngine, type FloatArray, type GemmOptions } from '../linalg/engine.js';
import { encodeModelToBytes } from '../onnx/codec.js';
import { DataType } from '../onnx/dtypes.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../onnx/graph.js';
import type { ModelProto } from '../onnx/types.js';
import { openSession, runSession } from './session.js';

export { MatrixEngine, type FloatArray, type GemmOptions } from '../linalg/engine.js';

function gemmModel(elemType: number, transA: boolean, transB: boolean): ModelProto {
  const attributes = [makeAttribute('transA', transA ? 1 : 0, true), makeAttribute('transB', transB ? 1 : 0, true)];
  return makeModel(
    makeGraph('gemm', [makeNode('Gemm', ['a', 'b'], ['c'], { attributes })], [makeValueInfo('a', elemType, ['a0', 'a1']), makeValueInfo('b', elemType, ['b0', 'b1'])], [makeValueInfo('c', elemType, ['c0', 'c1'])]),
  );
}

export class OrtMatrixEngine extends MatrixEngine {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  constructor(private readonly threads = 1) {
    super();
  }

  private session(f64: boolean, transA: boolean, transB: boolean): Promise<ort.InferenceSession> {
    const key = `${f64}:${transA}:${transB}`;
    let s = this.sessions.get(key);
    if (!s) {
      const bytes = encodeModelToBytes(gemmModel(f64 ? DataType.DOUBLE : DataType.FLOAT, transA, transB));
      s = openSession(bytes, { intraOpThreads: this.threads }).then((o) => o.session);
      this.sessions.set(key, s);
    }
    return s;
  }

  async gemm<T extends FloatArray>(a: T, aDims: [number, number], b: T, bDims: [number, number], opts: GemmOptions = {}): Promise<T> {
    checkDims('A', a, aDims);
    checkDims('B', b, bDims);
    const f64 = a instanceof Float64Array;
    const type = f64 ? 'float64' : 'float32';
    const s = await this.session(f64, !!opts.transA, !!opts.transB);
    const out = await runSession(s, { a: new ort.Tensor(type, a, aDims), b: new ort.Tensor(type, b, bDims) }, ['c']);
    return out.c.data as T;
  }

  async release(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }
}

export interface MatrixEngineOptions {
  /** 'ort' (default): products in onnxruntime; 'dense': every product in JS. */
  kind?: 'ort' | 'dense';
  /** intraOpNumThreads of the ORT sessions (default 1). */
  threads?: number;
  /** With 'ort': products under this many multiply-adds stay in JS, where a session call costs more. */
  jsBelow?: number;
}

/** The engine behind src/linalg/'s algorithms. Call release() when done. */
export function matrixEngine(opts: MatrixEngineOptions = {}): MatrixEngine {
  if (opts.kind === 'dense') return new DenseEngine();
  const ort = new OrtMatrixEngine(opts.threads ?? 1);
  return opts.jsBelow ? new HybridEngine(ort, opts.jsBelow) : ort;
}
