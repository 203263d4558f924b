/**
 * The float64 matrix product GPTQ's blocked factorizations (linalg.ts) and lazy updates use: ORT's BLAS
 * through the shared MatrixEngine, except for products below ~2M multiply-adds, which stay in JS where
 * a session call would cost more than the arithmetic.
 */
import { MatrixEngine } from '../../runtime/matrix.js';
import { matmulJs, type MatMul } from './linalg.js';

/** Call close() when done. */
export async function ortMatMul(threads = 1): Promise<{ matmul: MatMul; close: () => Promise<void> }> {
  const engine = new MatrixEngine(threads);
  const matmul: MatMul = async (a, m, k, b, n) => (m * k * n < 2_000_000 ? matmulJs(a, m, k, b, n) : engine.matmul(a, m, k, b, n));
  return { matmul, close: () => engine.release() };
}
