/**
 * float32 → float16 (clamped to ±65504) with its error sums, on WebAssembly SIMD (float16.wat): the
 * bit patterns float32ArrayToFloat16(…, 'clamp') gives, 4–6× faster. Values go through the module's
 * memory a chunk at a time, so it stays small whatever the tensor's size.
 */
import { regions, wasmKernel } from './wasm.js';
import { WASM_BASE64 } from './float16.wasm.js';

interface Exports {
  err: WebAssembly.Global;
  ref: WebAssembly.Global;
  toHalfMeasured(src: number, n: number, dst: number): void;
}

const kernel = wasmKernel<Exports>(WASM_BASE64);
const CHUNK = 1 << 20;

/**
 * Writes the float16 bits of `src` into `dst` (clamped); returns Σ(x − back)² and Σx² (back: the
 * float16 read back), or undefined where no SIMD kernel runs (then nothing was written).
 */
export function toFloat16ClampedSums(src: Float32Array, dst: Uint16Array): { err: number; ref: number } | undefined {
  const { at, end } = regions(4 * CHUNK, 2 * CHUNK);
  const k = kernel.instance(end);
  if (!k) return undefined;
  const [S, D] = at;
  const buf = k.memory.buffer;
  let err = 0;
  let ref = 0;
  for (let start = 0; start < src.length; start += CHUNK) {
    const n = Math.min(CHUNK, src.length - start);
    new Float32Array(buf, S, n).set(src.subarray(start, start + n));
    k.toHalfMeasured(S, n, D);
    dst.set(new Uint16Array(buf, D, n), start);
    err += k.err.value as number;
    ref += k.ref.value as number;
  }
  return { err, ref };
}
