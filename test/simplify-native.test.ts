/**
 * simplify's output check runs the original and every candidate in onnxruntime; a model that aborts
 * onnxruntime natively there must not take the build's process down. The crash here is real (no signal
 * sent by the test): a GRU run on a sequence of length 0 ends onnxruntime-node 1.30 with "terminate
 * called without an active exception" (SIGABRT), as test/fixtures/crash/gru-seq0.onnx does (see
 * test/native-crash.test.ts). Were the check still run in this process, this test file's worker would die.
 *
 * - A pass whose result crashes onnxruntime is the pass's fault: it is dropped, the report says why
 *   (skipped + one warning), the step goes on; with `onMismatch: error` it is a failed compression (exit 1).
 * - An original that crashes onnxruntime in the check is the model's fault: a CompressError naming the
 *   file, exit 2.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { CompressError } from '../src/errors.js';
import { decodeModel } from '../src/onnx/codec.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeInt64Tensor, makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { seededRandom } from '../src/random.js';
import { closeIsolatedPool } from '../src/runtime/isolate.js';
import { PASSES, SIMPLIFY_DEFAULTS, simplifyStep } from '../src/transforms/simplify/index.js';
import type { StepContext } from '../src/transforms/types.js';

const F = DataType.FLOAT;
const rand = seededRandom(9);
const floats = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);
const ops = (m: ModelProto) => m.graph!.node.map((n) => n.opType);
const ctx = (model: ModelProto): StepContext => ({ file: 'gru.onnx', original: model, device: 'cpu', seed: 1, log: () => {} });
afterAll(() => closeIsolatedPool());

/** X [2, 3, 2] → GRU (hidden 5, weights as initializers) → Y_h [1, 3, 5]: runs fine. */
function gru(): ModelProto {
  const g = makeGraph(
    'gru',
    [makeNode('GRU', ['X', 'W', 'R'], ['', 'Y_h'], { attributes: [makeAttribute('hidden_size', 5, true)] })],
    [makeValueInfo('X', F, [2, 3, 2])],
    [makeValueInfo('Y_h', F, [1, 3, 5])],
    [makeTensor('W', F, [1, 15, 2], floats(30)), makeTensor('R', F, [1, 15, 5], floats(75))],
  );
  return makeModel(g, 14);
}

describe("simplify's output check on a model that aborts onnxruntime", () => {
  const saved = PASSES.gemm;
  afterEach(() => {
    PASSES.gemm = saved;
  });

  it('a pass whose result aborts onnxruntime is dropped with the reason, and the step goes on', async () => {
    // A broken "gemm" pass that slices the GRU's input to a length-0 sequence (a wrong fold could do that).
    PASSES.gemm = {
      name: 'gemm',
      run(m) {
        if (m.graph!.node.some((n) => n.opType === 'Slice')) return { model: m, changed: 0 };
        const out = structuredClone(m);
        const g = out.graph!;
        g.initializer.push(makeInt64Tensor('zero', [0]));
        g.node.unshift(makeNode('Slice', ['X', 'zero', 'zero', 'zero'], ['X0']));
        g.node[1].input[0] = 'X0';
        return { model: out, changed: 1 };
      },
    };
    const model = gru();
    const r = await simplifyStep()(model, ctx(model));
    expect(ops(r.model)).toEqual(['GRU']);
    const reason = /^onnxruntime crashed on the simplified model \(during simplify's output check\): the process was killed by SIGABRT$/;
    expect(r.report.skipped).toHaveLength(1);
    expect(r.report.skipped[0].name).toBe('gemm');
    expect(r.report.skipped[0].reason).toMatch(reason);
    expect(r.report.warnings).toHaveLength(1);
    expect(r.report.warnings[0]).toMatch(/^pass gemm dropped: onnxruntime crashed on the simplified model .* SIGABRT$/);
    // The original was checked against itself: it ran on the feeds.
    expect((r.report.totals as { checkedFeeds: number }).checkedFeeds).toBeGreaterThan(0);

    const strict = await simplifyStep({ ...SIMPLIFY_DEFAULTS, onMismatch: 'error' })(model, ctx(model)).catch((e: unknown) => e);
    expect(strict).toBeInstanceOf(CompressError);
    expect((strict as CompressError).exitCode).toBe(1);
    expect((strict as CompressError).message).toMatch(/^gru\.onnx: simplify made a model onnxruntime cannot run: onnxruntime crashed on the simplified model .* SIGABRT$/);
  }, 120_000);

  it('an original that aborts onnxruntime in the check is an error for that model (exit 2), not a dead process', async () => {
    // test/fixtures/crash/gru-seq0.onnx with its W computed by an Add of two constants: the fold pass
    // changes the model, so the check runs the original (which crashes on any input).
    const model = decodeModel(readFileSync(resolve('test/fixtures/crash/gru-seq0.onnx')));
    const g = model.graph!;
    g.input = g.input.filter((i) => i.name !== 'W' && i.name !== 'R');
    g.initializer.push(makeTensor('W0', F, [1, 15, 2], floats(30)), makeTensor('W1', F, [1, 15, 2], floats(30)), makeTensor('R', F, [1, 15, 5], floats(75)));
    g.node.unshift(makeNode('Add', ['W0', 'W1'], ['W']));
    const e = await simplifyStep()(model, ctx(model)).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(CompressError);
    expect((e as CompressError).exitCode).toBe(2);
    expect((e as CompressError).message).toBe("gru.onnx: onnxruntime crashed on the model (during simplify's output check, on the source model): the process was killed by SIGABRT");
  }, 120_000);
});
