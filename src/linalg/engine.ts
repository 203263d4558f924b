/**
 * Where the large matrix products of the factorizations run. The algorithms in src/linalg/ and the
 * transforms take a MatrixEngine and call gemm (or the shorthands below); which engine backs it is
 * picked in one place, `matrixEngine()` in src/runtime/matrix.ts:
 *
 * - DenseEngine: JS loops, no native runtime (small products; tests).
 * - the onnxruntime engine (src/runtime/matrix.ts): ORT's BLAS, for products with full weight matrices.
 * - HybridEngine: JS below a work threshold, another engine above it (a session call costs more than
 *   the arithmetic of a small product).
 *
 * Layout: row-major; `a` is stored rows×cols = aDims (before transA), likewise `b`. No onnxruntime import
 * here, so code that only needs the JS side never loads the native runtime.
 */
import { matmulSmall, transpose } from './dense.js';

export type FloatArray = Float32Array | Float64Array;

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
}

export function checkDims(name: string, a: FloatArray, [rows, cols]: [number, number]): void {
  if (a.length !== rows * cols) throw new RangeError(`${name} has ${a.length} values, expected ${rows}×${cols} = ${rows * cols}`);
}

export abstract class MatrixEngine {
  /** op(A)·op(B); A stored rows×cols = aDims, B likewise. Both must have the same element type. */
  abstract gemm<T extends FloatArray>(a: T, aDims: [number, number], b: T, bDims: [number, number], opts?: GemmOptions): Promise<T>;

  /** Frees whatever the engine holds (sessions); the engine must not be used afterwards. */
  async release(): Promise<void> {}

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
}

/** op(A)·op(B) in JS loops (float64 sums, result in A's element type). */
export function gemmDense<T extends FloatArray>(a: T, aDims: [number, number], b: T, bDims: [number, number], opts: GemmOptions = {}): T {
  checkDims('A', a, aDims);
  checkDims('B', b, bDims);
  const [m, k] = opts.transA ? [aDims[1], aDims[0]] : aDims;
  const n = opts.transB ? bDims[0] : bDims[1];
  const kb = opts.transB ? bDims[1] : bDims[0];
  if (kb !== k) throw new RangeError(`inner dimensions differ: ${k} and ${kb}`);
  const opA = opts.transA ? transpose(a, aDims[0], aDims[1]) : a;
  const opB = opts.transB ? transpose(b, bDims[0], bDims[1]) : b;
  const c = matmulSmall(opA, m, k, opB, n);
  return (a instanceof Float64Array ? c : Float32Array.from(c)) as T;
}

/** Every product in JS. */
export class DenseEngine extends MatrixEngine {
  async gemm<T extends FloatArray>(a: T, aDims: [number, number], b: T, bDims: [number, number], opts: GemmOptions = {}): Promise<T> {
    return gemmDense(a, aDims, b, bDims, opts);
  }
}

/** Products under `minWork` multiply-adds in JS, larger ones in `large`. */
export class HybridEngine extends MatrixEngine {
  constructor(
    private readonly large: MatrixEngine,
    private readonly minWork: number,
  ) {
    super();
  }

  gemm<T extends FloatArray>(a: T, aDims: [number, number], b: T, bDims: [number, number], opts: GemmOptions = {}): Promise<T> {
    const m = opts.transA ? aDims[1] : aDims[0];
    const k = opts.transA ? aDims[0] : aDims[1];
    const n = opts.transB ? bDims[0] : bDims[1];
    if (m * k * n < this.minWork) return Promise.resolve(gemmDense(a, aDims, b, bDims, opts));
    return this.large.gemm(a, aDims, b, bDims, opts);
  }

  release(): Promise<void> {
    return this.large.release();
  }
}

/**
 * An engine made on its first product by `load` (e.g. one that loads onnxruntime): a step that may
 * need products creates it up front and pays for the loading only if it does.
 */
export class LazyEngine extends MatrixEngine {
  private engine?: Promise<MatrixEngine>;
  constructor(private readonly load: () => Promise<MatrixEngine>) {
    super();
  }

  async gemm<T extends FloatArray>(a: T, aDims: [number, number], b: T, bDims: [number, number], opts?: GemmOptions): Promise<T> {
    this.engine ??= this.load();
    return (await this.engine).gemm(a, aDims, b, bDims, opts);
  }

  override async release(): Promise<void> {
    // An engine that failed to load failed its product already: nothing to release.
    const engine = await this.engine?.catch(() => undefined);
    await engine?.release();
  }
}
