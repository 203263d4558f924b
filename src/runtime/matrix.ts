/**
 * onnxruntime as the matrix engine: one tiny Gemm model per (element type, transA, transB), inputs with
 * symbolic dims, so any op(A)·op(B) in float32 or float64 runs in ORT's BLAS (FACTS.md: a 768×3072 by
 * 3072×64 product takes ~2 ms there against ~500 ms in JS loops). One session per form, reused for
 * every shape.
 *
 * Layout: row-major; `a` is stored rows×cols = aDims (before transA), likewise `b`.
 */
import * as ort from 'onnxruntime-node';
import { encodeModelToBytes } from '../onnx/codec.js';
import { DataType } from '../onnx/dtypes.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../onnx/graph.js';
import type { ModelProto } from '../onnx/types.js';
import { openSession, runSession } from './session.js';

export type FloatArray = Float32Array | Float64Array;

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
}

function gemmModel(elemType: number, transA: boolean, transB: boolean): ModelProto {
  const attributes = [makeAttribute('transA', transA ? 1 : 0, true), makeAttribute('transB', transB ? 1 : 0, true)];
  return makeModel(
    makeGraph('gemm', [makeNode('Gemm', ['a', 'b'], ['c'], { attributes })], [makeValueInfo('a', elemType, ['a0', 'a1']), makeValueInfo('b', elemType, ['b0', 'b1'])], [makeValueInfo('c', elemType, ['c0', 'c1'])]),
  );
}

function check(name: string, a: FloatArray, [rows, cols]: [number, number]): void {
  if (a.length !== rows * cols) throw new RangeError(`${name} has ${a.length} values, expected ${rows}×${cols} = ${rows * cols}`);
}

export class MatrixEngine {
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  constructor(private readonly threads = 1) {}

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

  /** op(A)·op(B); A stored rows×cols = aDims, B likewise. Both must have the same element type. */
  async gemm<T extends FloatArray>(a: T, aDims: [number, number], b: T, bDims: [number, number], opts: GemmOptions = {}): Promise<T> {
    check('A', a, aDims);
    check('B', b, bDims);
    const f64 = a instanceof Float64Array;
    const type = f64 ? 'float64' : 'float32';
    const s = await this.session(f64, !!opts.transA, !!opts.transB);
    const out = await runSession(s, { a: new ort.Tensor(type, a, aDims), b: new ort.Tensor(type, b, bDims) }, ['c']);
    return out.c.data as T;
  }

  /** A·B for A m×k and B k×n. */
  matmul<T extends FloatArray>(a: T, m: number, k: number, b: T, n: number): Promise<T> {
    return this.gemm(a, [m, k], b, [k, n]);
  }

  /** Aᵀ·B for A stored k×m and B k×n. */
  matmulTransA<T extends FloatArray>(a: T, k: number, m: number, b: T, n: number): Promise<T> {
    return this.gemm(a, [k, m], b, [k, n], { transA: true });
  }

  /** A·Bᵀ for A m×k and B stored n×k. */
  matmulTransB<T extends FloatArray>(a: T, m: number, k: number, b: T, n: number): Promise<T> {
    return this.gemm(a, [m, k], b, [n, k], { transB: true });
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
