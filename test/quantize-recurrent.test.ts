/**
 * 4-bit in streaming models (src/transforms/quantize/recurrent.ts): under a 4-bit request, every weight
 * that feeds a recurrent state the model takes as an input and returns as an output (carried from call to
 * call by an app) is delivered 8-bit per channel, with the reason in the per-layer table and the one
 * warning line (an error under `strict`); layers after the recurrence, and models whose recurrent state
 * starts at zero on each call, keep 4-bit; a precision assignment is delivered as assigned. What the rule
 * buys on Silero VAD, state carried over held-out audio, is in test/quantize-vad.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { DataType } from '../src/onnx/dtypes.js';
import { Dataflow } from '../src/onnx/dataflow.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { seededRandom } from '../src/random.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { quantizeStep } from '../src/transforms/quantize/index.js';
import { carriedRecurrence } from '../src/transforms/quantize/recurrent.js';

const H = 32;
const rand = seededRandom(5);
const init = (name: string, dims: number[]) => makeTensor(name, DataType.FLOAT, dims, Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (rand() * 2 - 1) * 0.3));
const f = (name: string, dims: number[]) => makeValueInfo(name, DataType.FLOAT, dims);

/**
 * x [1, 1, 32] → MatMul "pre" [32, 32] → LSTM (W [1, 128, 32], R [1, 128, 32]) → Y → MatMul "post" [32, 64] → y.
 * state: 'carried' (initial h/c are inputs h, c; Y_h/Y_c are outputs hn, cn), 'zero' (no initial state,
 * nothing returned), 'in-only' (h, c in, nothing returned).
 */
function streaming(state: 'carried' | 'zero' | 'in-only'): ModelProto {
  const n = makeNode;
  const stateIn = state !== 'zero';
  const stateOut = state === 'carried';
  const nodes = [
    n('MatMul', ['x', 'pre_w'], ['p'], { name: 'pre' }),
    n('LSTM', ['p', 'W', 'R', '', '', stateIn ? 'h' : '', stateIn ? 'c' : ''], ['Y', stateOut ? 'Yh' : '', stateOut ? 'Yc' : ''], { name: 'lstm', attributes: [makeAttribute('hidden_size', H, true)] }),
    n('Squeeze', ['Y', 'axes1'], ['s'], { name: 'squeeze' }),
    n('MatMul', ['s', 'post_w'], ['y'], { name: 'post' }),
    ...(stateOut ? [n('Identity', ['Yh'], ['hn'], { name: 'id_h' }), n('Identity', ['Yc'], ['cn'], { name: 'id_c' })] : []),
  ];
  const inits = [init('pre_w', [32, 32]), init('W', [1, 4 * H, 32]), init('R', [1, 4 * H, H]), init('post_w', [H, 64]), makeTensor('axes1', DataType.INT64, [1], BigInt64Array.of(1n))];
  const inputs = [f('x', [1, 1, 32]), ...(stateIn ? [f('h', [1, 1, H]), f('c', [1, 1, H])] : [])];
  const outputs = [f('y', [1, 1, 64]), ...(stateOut ? [f('hn', [1, 1, H]), f('cn', [1, 1, H])] : [])];
  return makeModel(makeGraph('stream', nodes, inputs, outputs, inits), 21);
}

const ctx = (m: ModelProto) => ({ file: 'stream.onnx', original: m, device: 'cpu' as const, seed: 1, log: () => {} });
const minElements = { minElements: 256 };

describe('4-bit in streaming models (recurrent state carried across calls)', () => {
  it('finds the LSTM whose state comes in and goes out, and what feeds it (not what follows it)', () => {
    const c = carriedRecurrence(streaming('carried'));
    expect(c.recurrent.map((x) => x.name)).toEqual(['lstm']);
    expect([...c.feeding].map((x) => x.name).sort()).toEqual(['lstm', 'pre']);
    expect(carriedRecurrence(streaming('zero')).recurrent).toEqual([]);
    expect(carriedRecurrence(streaming('in-only')).recurrent).toEqual([]);
  });

  it('int4: the weights feeding the carried state are 8-bit with the reason; the layer after it stays 4-bit; one warning line; strict fails', async () => {
    const m = streaming('carried');
    const { report } = await quantizeStep(quantizeDefaults('int4'), minElements)(m, ctx(m));
    const layers = (name: string) => report.layers.filter((l) => l.name === name);
    const why = /^it feeds the recurrent state carried from call to call \(1 LSTM with state in and out\)/;
    expect(layers('pre')).toEqual([expect.objectContaining({ requested: 'int4:32', delivered: 'int8', reason: expect.stringMatching(why) })]);
    // W and R of the LSTM itself.
    expect(layers('lstm')).toHaveLength(2);
    for (const l of layers('lstm')) expect(l).toMatchObject({ requested: 'int4:32', delivered: 'int8', reason: expect.stringMatching(why) });
    expect(layers('post')).toEqual([expect.objectContaining({ requested: 'int4:32', delivered: 'int4:32' })]);
    const lines = report.warnings.filter((w) => /delivered at another precision/.test(w));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/3 of 4 layers delivered at another precision than the requested int4:32: 3 as int8 \(it feeds the recurrent state/);
    await expect(quantizeStep({ ...quantizeDefaults('int4'), strict: true }, minElements)(m, ctx(m))).rejects.toThrow(/quantize\.strict: 3 of 4 layers/);
  });

  it('int4 with the state starting at zero on each call (or not returned): every layer 4-bit as asked', async () => {
    for (const state of ['zero', 'in-only'] as const) {
      const m = streaming(state);
      const { report } = await quantizeStep(quantizeDefaults('int4'), minElements)(m, ctx(m));
      expect(report.layers.map((l) => l.delivered), state).toEqual(['int4:32', 'int4:32', 'int4:32', 'int4:32']);
    }
  });

  it('int8 is untouched; a precision assignment is delivered as assigned', async () => {
    const m = streaming('carried');
    const eight = await quantizeStep(quantizeDefaults('int8'), minElements)(m, ctx(m));
    expect(eight.report.layers.every((l) => l.delivered === 'int8' && l.reason === undefined)).toBe(true);
    const { report } = await quantizeStep({ ...quantizeDefaults('int4'), layers: { pre: 'int4:32' } }, minElements)(m, ctx(m));
    expect(report.layers.find((l) => l.name === 'pre')).toMatchObject({ requested: 'int4:32', delivered: 'int4:32' });
  });
});

describe('Dataflow', () => {
  it("stops at Shape (a value's shape is not its values) and follows If outputs into the right branch only", () => {
    const n = makeNode;
    const branch = (name: string, out: string[], body: ReturnType<typeof makeNode>[]) => makeGraph(name, body, [], out.map((o) => f(o, [1])));
    // then: t0 = Neg(a), t1 = Abs(b); else: e0 = Neg(b), e1 = Abs(a) (a, b read from the main graph).
    const thenG = branch('then', ['t0', 't1'], [n('Neg', ['a'], ['t0'], { name: 'tneg' }), n('Abs', ['b'], ['t1'], { name: 'tabs' })]);
    const elseG = branch('else', ['e0', 'e1'], [n('Neg', ['b'], ['e0'], { name: 'eneg' }), n('Abs', ['a'], ['e1'], { name: 'eabs' })]);
    const nodes = [
      n('Relu', ['x'], ['a'], { name: 'ra' }),
      n('Sigmoid', ['z'], ['b'], { name: 'sb' }),
      n('Shape', ['w'], ['shape'], { name: 'shape' }),
      n('ConstantOfShape', ['shape'], ['zeros'], { name: 'cos' }),
      n('Add', ['a', 'zeros'], ['a2'], { name: 'add' }),
      n('If', ['cond'], ['o0', 'o1'], { name: 'if', attributes: [makeAttribute('then_branch', thenG), makeAttribute('else_branch', elseG)] }),
    ];
    const m = makeModel(makeGraph('g', nodes, [f('x', [1]), f('z', [1]), f('w', [1]), makeValueInfo('cond', DataType.BOOL, [])], [f('o0', [1]), f('o1', [1]), f('a2', [1])]), 21);
    const df = new Dataflow(m);
    const g = m.graph!;
    const names = (a: ReturnType<Dataflow['ancestors']>) => [...a.nodes].map((x) => x.name).sort();
    const viaShape = df.ancestors([{ graph: g, name: 'a2' }]);
    expect(names(viaShape)).toEqual(['add', 'cos', 'ra']);
    expect([...viaShape.inputs]).toEqual(['x']); // not w: only its shape is read
    const o0 = df.ancestors([{ graph: g, name: 'o0' }]);
    expect(names(o0)).toEqual(['eneg', 'if', 'ra', 'sb', 'tneg']);
    expect([...o0.inputs].sort()).toEqual(['cond', 'x', 'z']);
  });
});
