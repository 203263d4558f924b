/**
 * onnxruntime-node's 8-bit kernels on CPUs without VNNI (src/runtime/integer-kernels.ts): a model with
 * quantized activations is measured as exact integer kernels compute it, whatever the CPU, and the build
 * says how it measured.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { compressBuild } from '../src/pipeline.js';
import { loadRecipe } from '../src/recipe/index.js';
import { EMULATED_NOTICE, integerKernelsSaturate, quantizesActivations } from '../src/runtime/integer-kernels.js';
import { openSession } from '../src/runtime/session.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'integer-kernels-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const K = 64;
const N = 8;

/**
 * x [1, K] → QuantizeLinear (scale 1, uint8) → DequantizeLinear → MatMul with DequantizeLinear(W int8,
 * scale 1) → y [1, N]: onnxruntime fuses it into an 8-bit matrix product. With x = 255 and W = 127
 * every pair of products sums to 64,770, past what vpmaddubsw's 16 bits hold.
 */
function qdqMatMul(): ModelProto {
  const one = (name: string) => makeTensor(name, DataType.FLOAT, [], new Float32Array([1]));
  const nodes = [
    makeNode('QuantizeLinear', ['x', 'sx', 'zx'], ['xq']),
    makeNode('DequantizeLinear', ['xq', 'sx', 'zx'], ['xd']),
    makeNode('DequantizeLinear', ['w', 'sw'], ['wd']),
    makeNode('MatMul', ['xd', 'wd'], ['y']),
  ];
  const inits = [one('sx'), makeTensor('zx', DataType.UINT8, [], new Uint8Array([0])), makeTensor('w', DataType.INT8, [K, N], new Int8Array(K * N).fill(127)), one('sw')];
  return makeModel(makeGraph('qdq', nodes, [makeValueInfo('x', DataType.FLOAT, [1, K])], [makeValueInfo('y', DataType.FLOAT, [1, N])], inits), 13);
}

describe('8-bit kernels', () => {
  it('finds quantized activations (QuantizeLinear), not weight-only DequantizeLinear', () => {
    expect(quantizesActivations(qdqMatMul())).toBe(true);
    const weightOnly = qdqMatMul();
    weightOnly.graph!.node = weightOnly.graph!.node.filter((n) => n.opType !== 'QuantizeLinear' && n.input[0] !== 'xq');
    weightOnly.graph!.node.find((n) => n.opType === 'MatMul')!.input[0] = 'x';
    expect(quantizesActivations(weightOnly)).toBe(false);
  });

  it('ONNX_COMPRESS_EMULATE_INTEGERS forces either answer', () => {
    const saved = process.env.ONNX_COMPRESS_EMULATE_INTEGERS;
    try {
      process.env.ONNX_COMPRESS_EMULATE_INTEGERS = '1';
      expect(integerKernelsSaturate()).toBe(true);
      process.env.ONNX_COMPRESS_EMULATE_INTEGERS = '0';
      expect(integerKernelsSaturate()).toBe(false);
    } finally {
      if (saved === undefined) delete process.env.ONNX_COMPRESS_EMULATE_INTEGERS;
      else process.env.ONNX_COMPRESS_EMULATE_INTEGERS = saved;
    }
  });

  // On a VNNI CPU onnxruntime's fused kernel is exact; on one without, the session runs the group
  // unfused. Either way the product is 255 · 127 · 64 = 2,072,640 in every column (onnxruntime's own
  // kernel on an AVX2-only EPYC: 1,048,544, 32 saturated pair sums of 32,767).
  it('openSession gives the exact product where pair sums overflow 16 bits, on any CPU', async () => {
    const { session } = await openSession(qdqMatMul());
    try {
      const y = (await session.run({ x: new ort.Tensor('float32', new Float32Array(K).fill(255), [1, K]) })).y.data as Float32Array;
      expect([...y]).toEqual(new Array(N).fill(255 * 127 * K));
    } finally {
      await session.release();
    }
  });

  it('a build of a model with quantized activations says how it was measured where the kernels saturate, and only there', async () => {
    writeFileSync(join(tmp, 'qdq.onnx'), encodeModelToBytes(qdqMatMul()));
    writeFileSync(join(tmp, 'compress.yaml'), 'models:\n  qdq:\n    source: qdq.onnx\n    simplify: false\n    webCheck: false\n');
    const build = (await loadRecipe(join(tmp, 'compress.yaml'))).builds[0];
    const saved = process.env.ONNX_COMPRESS_EMULATE_INTEGERS;
    try {
      for (const [value, said] of [['1', true], ['0', false]] as const) {
        process.env.ONNX_COMPRESS_EMULATE_INTEGERS = value;
        const r = await compressBuild(build, { cacheDir: false });
        expect(r.manifest.warnings.includes(EMULATED_NOTICE)).toBe(said);
      }
    } finally {
      if (saved === undefined) delete process.env.ONNX_COMPRESS_EMULATE_INTEGERS;
      else process.env.ONNX_COMPRESS_EMULATE_INTEGERS = saved;
    }
  });
});
