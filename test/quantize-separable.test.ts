/**
 * 4-bit in depthwise-separable networks (src/transforms/quantize/separable.ts): under a 4-bit request,
 * every Conv of a model that has a depthwise Conv is delivered 8-bit per channel, with the reason in the
 * per-layer table and the one warning line (and an error under `strict`); a model without depthwise
 * Convs keeps 4-bit Convs; MatMuls keep 4-bit either way; a precision assignment (the budget search) is
 * delivered as assigned. What the rule buys on real models (PP-OCRv4) is in test/zoo.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { DataType } from '../src/onnx/dtypes.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { seededRandom } from '../src/random.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { quantizeStep } from '../src/transforms/quantize/index.js';
import { countDepthwise } from '../src/transforms/quantize/separable.js';

const rand = seededRandom(3);
const init = (name: string, dims: number[]) => makeTensor(name, DataType.FLOAT, dims, Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rand() * 2 - 1));

/** x [1,64,8,8] → (depthwise 3×3 →) pointwise 1×1 128 → GlobalAveragePool → Flatten → MatMul [128, 64]. */
function net(depthwise: boolean): ModelProto {
  const n = makeNode;
  const nodes = [
    ...(depthwise ? [n('Conv', ['x', 'dw_w'], ['d'], { name: 'dw', attributes: [makeAttribute('group', 64, true), makeAttribute('pads', [1, 1, 1, 1], true)] })] : []),
    n('Conv', [depthwise ? 'd' : 'x', 'pw_w'], ['p'], { name: 'pw' }),
    n('GlobalAveragePool', ['p'], ['g'], { name: 'gap' }),
    n('Flatten', ['g'], ['f'], { name: 'flat' }),
    n('MatMul', ['f', 'fc_w'], ['y'], { name: 'fc' }),
  ];
  const inits = [...(depthwise ? [init('dw_w', [64, 1, 3, 3])] : []), init('pw_w', [128, 64, 1, 1]), init('fc_w', [128, 64])];
  return makeModel(makeGraph('net', nodes, [makeValueInfo('x', DataType.FLOAT, [1, 64, 8, 8])], [makeValueInfo('y', DataType.FLOAT, [1, 64])], inits), 21);
}

const ctx = (m: ModelProto) => ({ file: 'net.onnx', original: m, device: 'cpu' as const, seed: 1, log: () => {} });
const minElements = { minElements: 256 };

describe('4-bit in depthwise-separable networks', () => {
  it('counts depthwise Convs (group > 1, one input channel per group)', () => {
    expect(countDepthwise(net(true))).toBe(1);
    expect(countDepthwise(net(false))).toBe(0);
  });

  it('int4: the Convs of a separable network are 8-bit with the reason; MatMul stays 4-bit; one warning line', async () => {
    const m = net(true);
    const { report } = await quantizeStep(quantizeDefaults('int4'), minElements)(m, ctx(m));
    const layer = (name: string) => report.layers.find((l) => l.name === name)!;
    expect(layer('pw')).toMatchObject({ requested: 'int4:32', delivered: 'int8', reason: expect.stringMatching(/^a Conv of a depthwise-separable network \(1 depthwise Convs\)/) });
    // The depthwise Conv's own 4-bit form is larger (K = 9 per block): the size reason comes first.
    expect(layer('dw')).toMatchObject({ requested: 'int4:32', delivered: 'int8', reason: expect.stringMatching(/not smaller than 8-bit/) });
    expect(layer('fc')).toMatchObject({ requested: 'int4:32', delivered: 'int4:32' });
    const lines = report.warnings.filter((w) => /delivered at another precision/.test(w));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/2 of 3 layers delivered at another precision than the requested int4:32: 2 as int8 \(.*depthwise-separable network/);
    await expect(quantizeStep({ ...quantizeDefaults('int4'), strict: true }, minElements)(m, ctx(m))).rejects.toThrow(/quantize\.strict: 2 of 3 layers/);
  });

  it('int4 without depthwise Convs: the Conv is 4-bit as asked', async () => {
    const m = net(false);
    const { report } = await quantizeStep(quantizeDefaults('int4'), minElements)(m, ctx(m));
    expect(report.layers.find((l) => l.name === 'pw')).toMatchObject({ requested: 'int4:32', delivered: 'int4:32' });
  });

  it('a precision assignment is delivered as assigned (the budget search may keep such a Conv 4-bit)', async () => {
    const m = net(true);
    const { report } = await quantizeStep({ ...quantizeDefaults('int4'), layers: { pw: 'int4:32' } }, minElements)(m, ctx(m));
    expect(report.layers.find((l) => l.name === 'pw')).toMatchObject({ requested: 'int4:32', delivered: 'int4:32' });
  });
});
