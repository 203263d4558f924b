/**
 * The round-to-nearest kernels callers use: rtn.ts's computations on WebAssembly SIMD (rtn.wat), 2–4×
 * faster, with the same codes, scales and zero points bit for bit; the error sums add up in another order
 * (relative differences ~1e-12 over millions of values). A call copies the floats into the module's
 * memory, runs one kernel and copies the results out into arrays of their own. Where onnx/wasm.ts has no
 * instance to give (no SIMD, ONNX_COMPRESS_SIMD=0, too large), rtn.ts's scalar kernels run.
 */
import { quantizeAxisJs, quantizeBlocksColumnsJs, quantizeBlocksJs, type Bits, type Quantized } from './rtn.js';
import { unpackInt4 } from '../../onnx/int4.js';
import { regions, wasmKernel } from '../../onnx/wasm.js';
import { WASM_BASE64 } from './rtn.wasm.js';

interface Exports {
  err: WebAssembly.Global;
  ref: WebAssembly.Global;
  axis(x: number, outer: number, C: number, inner: number, bits: number, sym: number, codes: number, scales: number, zeros: number, w: number): void;
  columns(x: number, rows: number, C: number, bits: number, sym: number, codes: number, scales: number, zeros: number, w: number): void;
  blocks(x: number, R: number, K: number, block: number, bits: number, sym: number, codes: number, scales: number, zeros: number): void;
  blockColumns(x: number, K: number, N: number, block: number, bits: number, sym: number, codes: number, scales: number, zeros: number, w: number): void;
  packNibbles(src: number, n: number, dst: number): void;
}

const kernel = wasmKernel<Exports>(WASM_BASE64);

function run(
  x: Float32Array,
  groups: number,
  scratch: number,
  bits: Bits,
  symmetric: boolean,
  call: (k: Exports, x: number, codes: number, scales: number, zeros: number, w: number) => void,
  nibbles = false,
): Quantized | undefined {
  const n = x.length;
  const { at, end } = regions(4 * n, n, 4 * groups, groups, scratch);
  const k = kernel.instance(end);
  if (!k) return undefined;
  const [X, C, S, Z, W] = at;
  const buf = k.memory.buffer;
  new Float32Array(buf, X, n).set(x);
  call(k, X, C, S, Z, W);
  const q = {
    bits,
    symmetric,
    scales: new Float32Array(buf, S, groups).slice(),
    zeros: new Uint8Array(buf, Z, groups).slice(),
    sqErr: k.err.value as number,
    sqRef: k.ref.value as number,
  };
  if (!(nibbles && bits === 4 && n % 2 === 0)) return { ...q, codes: new Uint8Array(buf, C, n).slice() };
  k.packNibbles(C, n, X); // into the floats' room: they are all read by now
  const packed = new Uint8Array(buf, X, n / 2).slice();
  let codes: Uint8Array | undefined;
  return Object.defineProperty({ ...q, nibbles: packed }, 'codes', {
    enumerable: true,
    get: () => (codes ??= new Uint8Array(unpackInt4(packed, n, false).buffer)),
  }) as Quantized;
}

/** rtn.ts quantizeAxis. */
export function quantizeAxisSimd(x: Float32Array, outer: number, C: number, inner: number, bits: Bits, symmetric: boolean): Quantized | undefined {
  const sym = symmetric ? 1 : 0;
  if (inner === 1) return run(x, C, 40 * C, bits, symmetric, (k, X, c, s, z, w) => k.columns(X, outer, C, bits, sym, c, s, z, w));
  return run(x, C, 8 * C, bits, symmetric, (k, X, c, s, z, w) => k.axis(X, outer, C, inner, bits, sym, c, s, z, w));
}

/** rtn.ts quantizeBlocks. */
export function quantizeBlocksSimd(rows: Float32Array, R: number, K: number, block: number, bits: Bits, symmetric: boolean): Quantized | undefined {
  const groups = R * Math.ceil(K / block);
  return run(rows, groups, 0, bits, symmetric, (k, X, c, s, z) => k.blocks(X, R, K, block, bits, symmetric ? 1 : 0, c, s, z));
}

/** rtn.ts quantizeBlocksColumns; with `nibbles`, 4-bit codes come packed two per byte (Quantized.nibbles). */
export function quantizeBlocksColumnsSimd(x: Float32Array, K: number, N: number, block: number, bits: Bits, symmetric: boolean, nibbles = false): Quantized | undefined {
  const groups = N * Math.ceil(K / block);
  return run(x, groups, 32, bits, symmetric, (k, X, c, s, z, w) => k.blockColumns(X, K, N, block, bits, symmetric ? 1 : 0, c, s, z, w), nibbles);
}

/** Per-channel or per-tensor quantization along one axis: quantizeAxisJs's results, on SIMD where it runs. */
export function quantizeAxis(x: Float32Array, outer: number, C: number, inner: number, bits: Bits, symmetric: boolean): Quantized {
  return quantizeAxisSimd(x, outer, C, inner, bits, symmetric) ?? quantizeAxisJs(x, outer, C, inner, bits, symmetric);
}

/** Block-wise quantization of rows: quantizeBlocksJs's results, on SIMD where it runs. */
export function quantizeBlocks(rows: Float32Array, R: number, K: number, block: number, bits: Bits, symmetric: boolean): Quantized {
  return quantizeBlocksSimd(rows, R, K, block, bits, symmetric) ?? quantizeBlocksJs(rows, R, K, block, bits, symmetric);
}

/**
 * Block-wise quantization down the columns of [K, N]: quantizeBlocksColumnsJs's results, on SIMD where it
 * runs. `nibbles`: 4-bit codes are wanted two per byte (MatMulNBits' B when K is a whole number of
 * blocks); the SIMD kernel then packs them and never materializes one code per byte unless asked.
 */
export function quantizeBlocksColumns(x: Float32Array, K: number, N: number, block: number, bits: Bits, symmetric: boolean, nibbles = false): Quantized {
  return quantizeBlocksColumnsSimd(x, K, N, block, bits, symmetric, nibbles) ?? quantizeBlocksColumnsJs(x, K, N, block, bits, symmetric);
}
