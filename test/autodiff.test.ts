/**
 * Gradient checks: every op with a rule, in a tiny graph with random inputs, against central finite
 * differences of the same graph run by onnxruntime. The loss is Σ y·R (R random), so the check covers
 * the whole vector-Jacobian product, not just a sum. Graphs run in float64 when onnxruntime has double
 * kernels for every op in them, else in float32 (with a larger step and tolerance).
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { buildTrainingGraph, probeShapes, supportedOps } from '../src/autodiff/index.js';
import { loadFashionMnist } from '../bench/lib/fixtures.js';
import { readModel } from '../src/onnx/io.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeAttribute } from '../src/onnx/graph.js';
import { dimsOf, tensorFloat32 } from '../src/onnx/tensor.js';
import type { ModelProto, NodeProto } from '../src/onnx/types.js';
import { openSession } from '../src/runtime/session.js';
import { CompressError } from '../src/errors.js';
// The case table and the code that builds a case's training graph (shared with bench/gpu/grad-ops.ts).
import { buildCase, caseFeeds, cases, dynamicCases, floatTensor, modelOf, n, opts, rng, run, values, type Case } from './autodiff-cases.js';

// ---------------------------------------------------------------------------------------- helpers

interface CheckResult {
  type: 'float64' | 'float32';
  worst: number;
  checked: number;
}

async function check(c: Case, type: number, seed = 1): Promise<CheckResult> {
  const built = await buildCase(c, type, seed);
  const { r, params, training } = built;
  const { session } = await openSession(training.model, opts);
  try {
    const feedsWith = (name?: string, index?: number, delta?: number) => caseFeeds(built, type, name, index, delta);
    const out = (await session.run(feedsWith())) as Record<string, ort.Tensor>;
    let worst = 0;
    let checked = 0;
    const h = type === DataType.DOUBLE ? 1e-6 : 1e-3;
    const atol = type === DataType.DOUBLE ? 1e-7 : 2e-3;
    for (const [p, { v }] of params) {
      const grad = out[training.gradients.get(p)!].data as Float64Array | Float32Array;
      expect(grad.length).toBe(v.length);
      const picks = v.length <= 10 ? Array.from({ length: v.length }, (_, i) => i) : Array.from({ length: 10 }, () => Math.floor(r() * v.length));
      for (const i of picks) {
        const up = Number(((await session.run(feedsWith(p, i, h), ['loss'])) as Record<string, ort.Tensor>).loss.data[0]);
        const down = Number(((await session.run(feedsWith(p, i, -h), ['loss'])) as Record<string, ort.Tensor>).loss.data[0]);
        const numeric = (up - down) / (2 * h);
        const err = Math.abs(numeric - grad[i]) / (Math.max(Math.abs(numeric), Math.abs(grad[i])) + atol / 1e-2);
        if (!(err <= 1e-2)) throw new Error(`${c.name}: d loss / d ${p}[${i}] analytic ${grad[i]} vs numeric ${numeric}`);
        worst = Math.max(worst, err);
        checked++;
      }
    }
    return { type: type === DataType.DOUBLE ? 'float64' : 'float32', worst, checked };
  } finally {
    await session.release();
  }
}

/** float64 when onnxruntime has double kernels for the graph, else float32. */
async function gradCheck(c: Case): Promise<CheckResult> {
  if (c.float32) return check(c, DataType.FLOAT);
  try {
    return await check(c, DataType.DOUBLE);
  } catch (e) {
    if (!/Could not find an implementation|NOT_IMPLEMENTED|not supported|Type \(tensor\(double\)\)|type.*double/i.test(String((e as Error).message))) throw e;
    return await check(c, DataType.FLOAT);
  }
}

// --------------------------------------------------------------------------------------- the tests

describe('autodiff: gradients match finite differences', () => {
  const seen = new Set<string>();
  const results: string[] = [];
  for (const c of [...cases, ...dynamicCases]) {
    for (const node of c.nodes) seen.add(node.opType ?? '');
    it(c.name, async () => {
      const result = await gradCheck(c);
      expect(result.checked).toBeGreaterThan(0);
      results.push(`${c.name.padEnd(56)} ${result.type}  ${String(result.checked).padStart(3)} coords  worst rel err ${result.worst.toExponential(1)}`);
    });
  }

  afterAll(() => console.log(results.join('\n')));

  it('covers every op that has a rule', () => {
    const missing = supportedOps().filter((op) => !seen.has(op));
    expect(missing).toEqual([]);
  });
});

describe('autodiff: errors', () => {
  it('an op without a rule on a trainable path names the op and node', async () => {
    const c: Case = { name: 'Sin', nodes: [n('Sin', ['a'], ['y'])], inputs: { a: [3] } };
    await expect(check(c, DataType.FLOAT)).rejects.toThrow(/no gradient rule for Sin \(node "Sin_\d+"\)/);
    await expect(check(c, DataType.FLOAT)).rejects.toBeInstanceOf(CompressError);
  });

  it('an op without a rule off the trainable path is fine', async () => {
    const c: Case = { name: 'Sin off path', nodes: [n('Sin', ['x'], ['s']), n('Mul', ['s', 'a'])], inputs: { x: { dims: [3], feed: true }, a: [3] } };
    const r = await check(c, DataType.FLOAT);
    expect(r.checked).toBe(3);
  });
});

// ------------------------------------------------------------------------------ MaxPool on WebGPU

/** MaxPool nodes of a training graph that ask for the Indices output (onnxruntime's WebGPU EP fails those). */
const indexedMaxPools = (m: ModelProto) => m.graph!.node.filter((node) => node.opType === 'MaxPool' && node.output.filter((o) => o).length > 1);

/** The training graph of a one-node pooling graph in float32 (loss Σ y). */
async function poolTrainingGraph(node: NodeProto, dims: number[]): Promise<ModelProto> {
  const c: Case = { name: 'pool', nodes: [node, n('ReduceSum', ['y'], ['loss'], { keepdims: 0 })], inputs: {} };
  const x = floatTensor('x', DataType.FLOAT, dims, values({ dims, init: 'distinct' }, rng(3)));
  const model = modelOf(c, DataType.FLOAT, [x], [], c.nodes, 'loss', new Map());
  const shapes = await probeShapes(model, [{}], opts);
  return buildTrainingGraph(model, { params: ['x'], loss: 'loss', shapes }).model;
}

describe('autodiff: MaxPool gradients without the Indices output', () => {
  it('non-overlapping tiles (kernel = strides, no pads): no MaxPool with 2 outputs, no ScatterElements', async () => {
    for (const [attrs, dims] of [
      [{ kernel_shape: [2, 2], strides: [2, 2] }, [2, 3, 4, 6]],
      [{ kernel_shape: [2, 2], strides: [2, 2] }, [1, 2, 5, 7]],
      [{ kernel_shape: [3], strides: [3] }, [2, 3, 10]],
    ] as const) {
      const m = await poolTrainingGraph(n('MaxPool', ['x'], ['y'], { kernel_shape: [...attrs.kernel_shape], strides: [...attrs.strides] }), [...dims]);
      expect(indexedMaxPools(m)).toEqual([]);
      expect(m.graph!.node.filter((node) => node.opType === 'ScatterElements')).toEqual([]);
    }
  });

  it('overlapping or padded windows keep the Indices form (CPU only)', async () => {
    const m = await poolTrainingGraph(n('MaxPool', ['x'], ['y'], { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }), [1, 2, 5, 5]);
    expect(indexedMaxPools(m)).toHaveLength(1);
  });

  it('the Fashion-MNIST CNN: no Indices, and the same gradients as the Indices form', async () => {
    // Padding the far edge by 1 leaves each 2×2 / stride 2 MaxPool's output unchanged (28 → 14 → 7,
    // no window reaches the pad) but forces the Indices form: the reference for the mask form.
    const original = readModel('test/fixtures/fmnist-cnn/model.onnx');
    const padded = structuredClone(original);
    for (const node of padded.graph!.node) {
      if (node.opType !== 'MaxPool') continue;
      node.attribute = [...node.attribute.filter((a) => a.name !== 'pads'), makeAttribute('pads', [0, 0, 1, 1], true)];
    }
    const images = loadFashionMnist('test/fixtures/fmnist-cnn/t10k-images-idx3-ubyte.gz', 'test/fixtures/fmnist-cnn/t10k-labels-idx1-ubyte.gz', 6);
    const batch = (from: number, count: number) => {
      const data = new Float32Array(count * 28 * 28);
      for (let i = 0; i < count; i++) data.set(images[from + i].feeds.image.data as Float32Array, i * 28 * 28);
      return { image: new ort.Tensor('float32', data, [count, 1, 28, 28]) };
    };
    const gradients = async (model: ModelProto) => {
      const g = model.graph!;
      const withLoss: ModelProto = {
        ...model,
        graph: { ...g, node: [...g.node, n('ReduceSum', ['logits'], ['loss'], { keepdims: 0 })], output: [{ name: 'loss', metadataProps: [] }] },
      };
      const shapes = await probeShapes(withLoss, [batch(0, 1), batch(0, 2)], opts);
      const params = g.initializer.filter((t) => t.dataType === DataType.FLOAT).map((t) => t.name!);
      const training = buildTrainingGraph(withLoss, { params, loss: 'loss', shapes });
      const feeds: Record<string, ort.Tensor> = { ...batch(2, 4) };
      for (const [name, t] of training.params) feeds[name] = new ort.Tensor('float32', tensorFloat32(t), dimsOf(t));
      const out = await run(training.model, feeds, [...training.gradients.values()]);
      return { training, grads: new Map([...training.gradients].map(([p, o]) => [p, out[o].data as Float32Array])) };
    };
    const mask = await gradients(original);
    const indexed = await gradients(padded);
    expect(indexedMaxPools(mask.training.model)).toEqual([]);
    expect(indexedMaxPools(indexed.training.model)).toHaveLength(2);
    for (const [p, a] of mask.grads) {
      const b = indexed.grads.get(p)!;
      expect(a.length).toBe(b.length);
      let scale = 0;
      let diff = 0;
      for (let i = 0; i < a.length; i++) {
        scale = Math.max(scale, Math.abs(b[i]));
        diff = Math.max(diff, Math.abs(a[i] - b[i]));
      }
      expect(scale, p).toBeGreaterThan(0);
      expect(diff, p).toBeLessThanOrEqual(1e-5 * scale);
    }
  });
});
