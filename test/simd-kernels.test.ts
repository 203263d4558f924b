/**
 * The WebAssembly SIMD kernels against the scalar ones they replace: the same codes, scales and zero
 * points (float16 bits, pruned weights) bit for bit, on awkward values (NaN, ±Inf, ±0, subnormals, constant groups) and awkward shapes
 * (columns not a multiple of 4, a last block shorter than the others); and the compiled modules in the
 * repository are what their .wat sources compile to.
 */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { quantizeAxisJs, quantizeBlocksColumnsJs, quantizeBlocksJs, type Bits, type Quantized } from '../src/transforms/quantize/rtn.js';
import {
  quantizeAxis,
  quantizeAxisSimd,
  quantizeBlocks,
  quantizeBlocksColumns,
  quantizeBlocksColumnsSimd,
  quantizeBlocksSimd,
} from '../src/transforms/quantize/rtn-simd.js';
import { toFloat16ClampedSums } from '../src/onnx/float16-simd.js';
import { pruneSmallestSimd } from '../src/transforms/prune/magnitude-simd.js';
import { pruneMagnitudeInPlace, pruneMagnitudeInPlaceJs } from '../src/transforms/prune/unstructured.js';
import { float16ToFloat32Array } from '../src/onnx/float16.js';
import { toFloat16Clamped } from '../src/transforms/quantize/float16.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Gaussian-ish weights with a few rows/columns scaled up, as trained layers have. */
function weights(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() + r() + r() - 1.5) * (i % 13 === 0 ? 8 : 1);
  return x;
}

/** Weights with NaN, ±Inf, ±0, subnormals, tiny values and runs of one value. */
function awkward(n: number, seed: number): Float32Array {
  const x = weights(n, seed);
  const r = rng(seed + 1);
  const specials = [NaN, Infinity, -Infinity, 0, -0, 1e-45, -1e-45, 1e-40, 3e-39, 65504, -1e30, 1e-20];
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < 0.02) x[i] = specials[Math.floor(r() * specials.length)];
    else if (u < 0.06) x[i] = 0;
  }
  // a stretch of one value and one of zeros (constant groups)
  x.fill(0.25, Math.floor(n / 3), Math.floor(n / 3) + 70);
  x.fill(0, Math.floor(n / 2), Math.floor(n / 2) + 70);
  return x;
}

function same(simd: Quantized | undefined, js: Quantized): void {
  expect(simd).toBeDefined();
  const s = simd!;
  expect(Buffer.from(s.codes).equals(Buffer.from(js.codes))).toBe(true);
  expect(Buffer.from(s.zeros).equals(Buffer.from(js.zeros))).toBe(true);
  // scales bit for bit (NaN scales too): compare their bytes
  expect(Buffer.from(s.scales.buffer, s.scales.byteOffset, s.scales.byteLength).equals(Buffer.from(js.scales.buffer, js.scales.byteOffset, js.scales.byteLength))).toBe(true);
  for (const k of ['sqErr', 'sqRef'] as const) {
    if (Number.isFinite(js[k])) expect(Math.abs(s[k] - js[k])).toBeLessThanOrEqual(1e-9 * Math.abs(js[k]) + 1e-300);
    else expect(Number.isFinite(s[k])).toBe(false);
  }
}

const kinds: [Bits, boolean][] = [
  [8, true],
  [8, false],
  [4, true],
  [4, false],
];

describe('WebAssembly SIMD quantization kernels', () => {
  it('compiled modules match their .wat sources', () => {
    execFileSync(process.execPath, ['scripts/wasm.mjs', '--check'], { stdio: 'pipe' });
  });

  for (const [name, make] of [
    ['trained-like', weights],
    ['awkward', awkward],
  ] as const) {
    for (const [bits, sym] of kinds) {
      it(`${name} values, ${bits}-bit ${sym ? 'symmetric' : 'asymmetric'}: same results as the scalar kernels`, () => {
        // per-channel over columns ([rows, C], C not a multiple of 4), over runs, per tensor
        for (const [outer, C, inner] of [
          [67, 45, 1],
          [64, 64, 1],
          [3, 7, 19],
          [1, 30, 64],
          [1, 1, 1001],
        ]) {
          const x = make(outer * C * inner, outer + C + inner);
          same(quantizeAxisSimd(x, outer, C, inner, bits, sym), quantizeAxisJs(x, outer, C, inner, bits, sym));
        }
        // blocks along rows and down columns, with a short last block and N not a multiple of 4
        for (const [K, N, block] of [
          [96, 16, 32],
          [100, 13, 32],
          [33, 5, 16],
          [256, 64, 128],
        ]) {
          const x = make(K * N, K * N);
          same(quantizeBlocksColumnsSimd(x, K, N, block, bits, sym), quantizeBlocksColumnsJs(x, K, N, block, bits, sym));
          same(quantizeBlocksSimd(x, N, K, block, bits, sym), quantizeBlocksJs(x, N, K, block, bits, sym));
        }
      });
    }
  }

  it('the exported kernels give the scalar results; a tensor beyond the kept memory gets its own', () => {
    const K = 2048;
    const N = 6656; // 13.6M values: a 68 MB work area, past the instance kept between calls
    const x = weights(K * N, 7);
    same(quantizeBlocksColumns(x, K, N, 32, 4, true), quantizeBlocksColumnsJs(x, K, N, 32, 4, true));
    const small = weights(4096, 3);
    same(quantizeAxis(small, 64, 64, 1, 8, true), quantizeAxisJs(small, 64, 64, 1, 8, true));
    same(quantizeBlocks(small, 64, 64, 32, 4, false), quantizeBlocksJs(small, 64, 64, 32, 4, false));
  });

  it('4-bit codes asked for packed come two per byte, and unpack to the same codes', () => {
    for (const [K, N, block] of [
      [96, 20, 32],
      [64, 3, 16],
    ]) {
      const x = awkward(K * N, K + N);
      for (const sym of [true, false]) {
        const js = quantizeBlocksColumnsJs(x, K, N, block, 4, sym);
        const q = quantizeBlocksColumns(x, K, N, block, 4, sym, true);
        expect(q.nibbles).toBeDefined();
        const pairs = new Uint8Array(js.codes.length / 2).map((_, i) => js.codes[2 * i] | (js.codes[2 * i + 1] << 4));
        expect(Buffer.from(q.nibbles!).equals(Buffer.from(pairs))).toBe(true);
        same(q, js); // reads q.codes: unpacked from the nibbles
      }
    }
    // 8-bit codes are never packed
    expect(quantizeBlocksColumns(weights(64 * 8, 1), 64, 8, 32, 8, true, true).nibbles).toBeUndefined();
  });

  it('ONNX_COMPRESS_SIMD=0 runs the scalar kernels', () => {
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '-e', "import('./src/transforms/quantize/rtn-simd.ts').then((m) => console.log(m.quantizeAxisSimd(new Float32Array(8), 2, 4, 1, 8, true) === undefined))"],
      { env: { ...process.env, ONNX_COMPRESS_SIMD: '0' }, encoding: 'utf8' },
    );
    expect(out.trim()).toBe('true');
  });
});

describe('WebAssembly SIMD float16 conversion', () => {
  /** Every float16 boundary: ties, subnormals, the overflow edge, infinities, NaNs with payloads. */
  function edges(): Float32Array {
    const bits = new Uint32Array(4096);
    const r = rng(11);
    const interesting = [0, 0x80000000, 0x33000000, 0x33000001, 0x337fffff, 0x33800000, 0x387fffff, 0x38800000, 0x38800fff, 0x38801000, 0x38802000,
      0x477fefff, 0x477ff000, 0x477fffff, 0x47800000, 0x7f7fffff, 0x7f800000, 0x7f800001, 0x7fc00000, 0x7fffffff, 0x00000001, 0x007fffff];
    for (let i = 0; i < bits.length; i++) {
      const u = r();
      const b = u < 0.3 ? interesting[Math.floor(r() * interesting.length)] : u < 0.5 ? (Math.floor(r() * 2 ** 32) >>> 0) : 0x3f800000 + Math.floor(r() * 0x800000);
      bits[i] = (b | (r() < 0.5 ? 0x80000000 : 0)) >>> 0;
    }
    // runs of four normal values, so both the vector and the scalar path run
    for (let i = 0; i < 1024; i++) bits[i] = 0x3c000000 + i * 4099;
    return new Float32Array(bits.buffer);
  }

  it('same float16 bits as the scalar conversion; the same error wherever it is finite', () => {
    for (const x of [edges(), weights(100_003, 5), weights(3 * 2 ** 20 + 7, 6)]) {
      const simd = new Uint16Array(x.length);
      const sums = toFloat16ClampedSums(x, simd);
      expect(sums).toBeDefined();
      const js = toFloat16Clamped(x);
      expect(Buffer.from(simd.buffer).equals(Buffer.from(js.buffer))).toBe(true);
      const back = float16ToFloat32Array(js);
      let e = 0;
      let r = 0;
      for (let i = 0; i < x.length; i++) {
        e += (x[i] - back[i]) ** 2;
        r += x[i] * x[i];
      }
      for (const [ours, theirs] of [
        [sums!.err, e],
        [sums!.ref, r],
      ]) {
        if (Number.isFinite(theirs)) expect(Math.abs(ours - theirs)).toBeLessThanOrEqual(1e-9 * theirs);
        else expect(Number.isFinite(ours)).toBe(false);
      }
    }
  });
});

describe('WebAssembly magnitude pruning', () => {
  /** Weights with many equal magnitudes (ties at the threshold), ±0, NaN and ±Inf. */
  function tied(n: number, seed: number): Float32Array {
    const r = rng(seed);
    const x = new Float32Array(n);
    const levels = [0, -0, 0.5, -0.5, 0.25, 1, -1, 2, NaN, Infinity, -Infinity];
    for (let i = 0; i < n; i++) x[i] = r() < 0.7 ? levels[Math.floor(r() * 8)] : levels[Math.floor(r() * levels.length)] * (1 + Math.floor(r() * 3));
    return x;
  }

  it('zeroes the same elements as the JS version (ties in storage order), with the same counts and error', () => {
    for (const [name, x] of [
      ['trained-like', weights(100_003, 3)],
      ['awkward', awkward(50_001, 4)],
      ['tied', tied(40_002, 5)],
      ['finite ties', tied(8_191, 6).map((v) => (Number.isFinite(v) ? v : 0.5))],
    ] as const) {
      for (const rate of [0, 0.1, 0.5, 0.73, 1]) {
        const a = x.slice();
        const b = x.slice();
        const simd = pruneSmallestSimd(a, Math.round(rate * x.length));
        const js = pruneMagnitudeInPlaceJs(b, rate);
        expect(simd, `${name} ${rate}`).toBeDefined();
        expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer)), `${name} ${rate}`).toBe(true);
        expect(simd!.zeros).toBe(js.zeros);
        if (Number.isFinite(js.weightError)) expect(Math.abs(simd!.weightError - js.weightError)).toBeLessThanOrEqual(1e-9 * js.weightError + 1e-300);
        else expect(Number.isFinite(simd!.weightError)).toBe(false);
      }
    }
  });

  it('a tensor larger than the module holds at once goes through in chunks: the same result', () => {
    const x = tied(4 * 2 ** 20 + 12_345, 7).map((v) => (Number.isFinite(v) ? v * (1 + (v > 0 ? 0.001 : 0)) : 0.25));
    const a = x.slice();
    const b = x.slice();
    const simd = pruneSmallestSimd(a, Math.round(0.5 * x.length));
    const js = pruneMagnitudeInPlaceJs(b, 0.5);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
    expect(simd!.zeros).toBe(js.zeros);
    expect(Math.abs(simd!.weightError - js.weightError)).toBeLessThanOrEqual(1e-9 * js.weightError);
  });

  it('pruneMagnitudeInPlace runs it', () => {
    const x = weights(10_000, 9);
    const a = x.slice();
    const b = x.slice();
    expect(pruneMagnitudeInPlace(a, 0.5).zeros).toBe(pruneMagnitudeInPlaceJs(b, 0.5).zeros);
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });
});
