/** One include/exclude dialect for every step: name globs and `op:` globs select the same nodes in quantize, prune and lowrank. */
import { describe, expect, it } from 'vitest';
import { readModel } from '../src/onnx/io.js';
import { makeNode } from '../src/onnx/graph.js';
import { globMatch, isSelected, matchesPattern, rejection } from '../src/transforms/select.js';
import { selectLayers } from '../src/transforms/prune/select.js';
import { selectWeights } from '../src/transforms/quantize/select.js';

const SPAM = new URL('./fixtures/spam-tinybert/model.onnx', import.meta.url).pathname;

describe('the include/exclude dialect', () => {
  it('globs names and op types alike: * any run (slashes too), ? one character, the rest literal', () => {
    expect(globMatch('/enc/*', '/enc/layers.0/linear1/MatMul')).toBe(true);
    expect(globMatch('*/linear?/MatMul', '/enc/layers.0/linear1/MatMul')).toBe(true);
    expect(globMatch('/enc/*', '/cls/Gemm')).toBe(false);
    expect(globMatch('a.b', 'aXb')).toBe(false); // regex characters are literal
    const conv = makeNode('Conv', ['x', 'w'], ['y'], { name: '/features/0/Conv' });
    const convT = makeNode('ConvTranspose', ['x', 'w'], ['y'], { name: 'up' });
    expect(matchesPattern('op:Conv', conv)).toBe(true);
    expect(matchesPattern('op:Conv', convT)).toBe(false); // no wildcard: the whole op type
    expect(matchesPattern('op:Conv*', convT)).toBe(true);
    expect(matchesPattern('op:?onv', conv)).toBe(true);
    expect(matchesPattern('/features/*', conv)).toBe(true);
    expect(rejection({ include: ['op:Gemm'], exclude: [] }, conv)).toBe('not matched by include');
    expect(rejection({ include: [], exclude: ['op:Conv*'] }, convT)).toBe('excluded by "op:Conv*"');
    expect(isSelected({ include: ['op:Conv*'], exclude: ['up'] }, convT)).toBe(false);
  });

  it('selects the same nodes in prune/lowrank (selectLayers) and quantize (selectWeights)', () => {
    const model = readModel(SPAM);
    const cases = [
      { include: ['op:Gem?'], exclude: ['/cls/*'] },
      { include: ['op:Mat*'], exclude: ['*/layers.1/*'] },
      { include: ['/enc/layers.0/*'], exclude: ['op:Gemm'] },
    ];
    for (const patterns of cases) {
      const pruned = selectLayers(model, patterns).layers.map((l) => l.name).sort();
      const quantized = selectWeights(model, { ...patterns, minElements: 0 })
        .targets.filter((t) => t.op !== 'Gather')
        .map((t) => t.name)
        .sort();
      expect(pruned.length).toBeGreaterThan(0);
      expect(quantized).toEqual(pruned);
    }
  });
});
