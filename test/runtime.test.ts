import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { CompressError } from '../src/errors.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeAttribute, makeNode, removeDeadCode } from '../src/onnx/graph.js';
import { readModel } from '../src/onnx/io.js';
import type { GraphProto, ModelProto, ValueInfoProto } from '../src/onnx/types.js';
import { captureActivations, collectActivations } from '../src/runtime/capture.js';
import { matrixEngine, type MatrixEngine } from '../src/runtime/matrix.js';
import { inputSpecs, openSession, outputNames, probeGpu, runSession, trimOrtMessage } from '../src/runtime/session.js';
import { loadFashionMnist, loadSpamTestSet } from '../bench/lib/fixtures.js';
import type { Sample } from '../src/data/types.js';

const F = new URL('./fixtures/', import.meta.url).pathname;
const FMNIST = `${F}fmnist-cnn/model.onnx`;
const SPAM = `${F}spam-tinybert/model.onnx`;

function rand(n: number, seed: number): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = s / 1073741824 - 1;
  }
  return out;
}

function jsMatmul(a: Float32Array, m: number, k: number, b: Float32Array, n: number): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) for (let p = 0; p < k; p++) for (let j = 0; j < n; j++) c[i * n + j] += a[i * k + p] * b[p * n + j];
  return c;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j];
  return t;
}

function expectClose(actual: Float32Array, expected: Float64Array, tol = 1e-4): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / (1 + Math.abs(expected[i])));
  expect(worst).toBeLessThan(tol);
}

/** The model cut after `value`: its only output, dead code removed. */
function truncated(model: ModelProto, value: string): ModelProto {
  const g = model.graph!;
  const out: ValueInfoProto = { name: value, metadataProps: [] };
  const graph: GraphProto = { ...g, node: [...g.node], initializer: [...g.initializer], valueInfo: [...g.valueInfo], output: [out] };
  removeDeadCode(graph);
  return { ...model, graph };
}

describe('openSession', () => {
  it('auto runs on the CPU without a warning when no GPU provider works (or on the GPU when one does)', async () => {
    const probe = await probeGpu();
    const { session, device, warnings } = await openSession(FMNIST, { device: 'auto' });
    try {
      if (probe.provider) {
        expect(device).toBe(probe.provider);
      } else {
        expect(device).toBe('cpu');
        expect(warnings).toEqual([]); // no GPU asked for explicitly: the device used is the record
      }
      const out = await runSession(session, { image: new ort.Tensor('float32', new Float32Array(784), [1, 1, 28, 28]) });
      expect(out.logits.dims).toEqual([1, 10]);
    } finally {
      await session.release();
    }
  });

  it('gpu fails with every provider tried and why when none works', async () => {
    const probe = await probeGpu();
    if (probe.provider) return; // a machine with a GPU: nothing to check here
    const err = await openSession(FMNIST, { device: 'gpu' }).catch((e) => e);
    expect(err).toBeInstanceOf(CompressError);
    expect(err.kind).toBe('runtime');
    expect(err.message).toMatch(/^.*model\.onnx: no GPU execution provider could run the model \(tried cuda, webgpu\): cuda: .+; webgpu: .+$/);
    expect(err.message).toContain('Failed to load shared library');
  });

  it('turns a bad model and a bad run into runtime errors', async () => {
    const err = await openSession(new Uint8Array([1, 2, 3])).catch((e) => e);
    expect(err).toBeInstanceOf(CompressError);
    expect(err.message).toMatch(/^onnxruntime cannot load the model: /);
    const { session } = await openSession(FMNIST);
    const runErr = await runSession(session, { image: new ort.Tensor('float32', new Float32Array(10), [1, 1, 2, 5]) }).catch((e) => e);
    await session.release();
    expect(runErr.message).toMatch(/^onnxruntime failed to run the model on inputs \{image: float32 \[1, 1, 2, 5\]\}: Got invalid dimensions for input: image/);
    expect(trimOrtMessage(new Error('/onnxruntime_src/x/y.cc:136 f() cond was false. Failed to get a WebGPU adapter: No supported adapters\n'))).toBe(
      'Failed to get a WebGPU adapter: No supported adapters',
    );
  });

  it('inputSpecs / outputNames use ORT type names and symbolic dims', () => {
    expect(inputSpecs(readModel(SPAM))).toEqual([{ name: 'input_ids', type: 'int64', dims: ['batch', 128] }]);
    const fm = readModel(FMNIST);
    expect(inputSpecs(fm)).toEqual([{ name: 'image', type: 'float32', dims: ['batch', 1, 28, 28] }]);
    expect(outputNames(fm)).toEqual(['logits']);
  });
});

describe('MatrixEngine', () => {
  const engines: [string, () => MatrixEngine][] = [
    ['ort', () => matrixEngine()],
    ['dense', () => matrixEngine({ kind: 'dense' })],
    ['hybrid', () => matrixEngine({ jsBelow: 20_000 })],
  ];
  it.each(engines)('%s: matmul, matmulTransA/B and gram match a JS reference', async (_, make) => {
    const engine = make();
    try {
      const [m, k, n] = [37, 53, 29];
      const a = rand(m * k, 1);
      const b = rand(k * n, 2);
      expectClose(await engine.matmul(a, m, k, b, n), jsMatmul(a, m, k, b, n));
      expectClose(await engine.matmulTransA(transpose(a, m, k), k, m, b, n), jsMatmul(a, m, k, b, n));
      expectClose(await engine.matmulTransB(a, m, k, transpose(b, k, n), n), jsMatmul(a, m, k, b, n));
      // Another shape through the same cached session.
      expectClose(await engine.matmul(b, k, n, rand(n * 5, 3), 5), jsMatmul(b, k, n, rand(n * 5, 3), 5));
      const x = rand(61 * 17, 4);
      expectClose(await engine.gram(x, 61, 17), jsMatmul(transpose(x, 61, 17), 17, 61, x, 17));
      await expect(engine.matmul(a, m, k + 1, b, n)).rejects.toThrow(/A has 1961 values, expected 37×54/);
    } finally {
      await engine.release();
    }
  });
});

describe('captureActivations', () => {
  const fm = readModel(FMNIST);
  const images = loadFashionMnist(`${F}fmnist-cnn/t10k-images-idx3-ubyte.gz`, `${F}fmnist-cnn/t10k-labels-idx1-ubyte.gz`, 19);

  async function reference(model: ModelProto, value: string, samples: Sample[]): Promise<ort.Tensor[]> {
    const { session } = await openSession(truncated(model, value));
    try {
      const out: ort.Tensor[] = [];
      for (const s of samples) out.push((await runSession(session, s.feeds))[value]);
      return out;
    } finally {
      await session.release();
    }
  }

  it('streams an intermediate value of the CNN equal to what the truncated model computes', async () => {
    const names = ['/3/MaxPool_output_0', '/8/Flatten_output_0'];
    const got = new Map<string, { i: number; dims: readonly number[]; data: Float32Array }[]>(names.map((n) => [n, []]));
    await captureActivations(fm, names, images, {
      batch: 8, // 1 alone, then 8 + 8 + 2
      onValue: (name, value, i) => {
        got.get(name)!.push({ i, dims: value.dims, data: (value.data as Float32Array).slice() });
      },
    });
    for (const name of names) {
      const ref = await reference(fm, name, images);
      const list = got.get(name)!;
      expect(list.map((v) => v.i)).toEqual(images.map((_, i) => i));
      list.forEach((v, i) => {
        expect(v.dims).toEqual(ref[i].dims);
        expectClose(v.data, Float64Array.from(ref[i].data as Float32Array), 1e-5);
      });
    }
    expect(got.get('/3/MaxPool_output_0')![0].dims).toEqual([1, 32, 14, 14]);
  });

  it('splits values whose batch axis is not the first (attention in [seq, batch, d] layout)', async () => {
    const spam = readModel(SPAM);
    const samples = loadSpamTestSet(`${F}spam-tinybert/test-split.json`, 5);
    const name = '/enc/layers.0/self_attn/Transpose_output_0';
    const got = await collectActivations(spam, [name, 'input_ids'], samples, { batch: 4 });
    const ref = await reference(spam, name, samples);
    expect(ref[0].dims).toEqual([128, 1, 128]); // [seq, batch, d]
    got.get(name)!.forEach((v, i) => expectClose(v, Float64Array.from(ref[i].data as Float32Array), 1e-5));
    expect(Array.from(got.get('input_ids')![3])).toEqual(Array.from(samples[3].feeds.input_ids.data as BigInt64Array, Number));
  });

  it('rejects values inside subgraphs, weights and unknown names', async () => {
    const vi = (name: string, elemType: number, dims = [2]): ValueInfoProto => ({
      name,
      type: { tensorType: { elemType, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
      metadataProps: [],
    });
    const branch = (name: string, op: string): GraphProto => ({
      name,
      node: [makeNode(op, ['x'], [`${name}_out`])],
      initializer: [],
      input: [],
      output: [vi(`${name}_out`, DataType.FLOAT)],
      valueInfo: [],
      quantizationAnnotation: [],
      sparseInitializer: [],
      metadataProps: [],
    });
    const model: ModelProto = {
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      metadataProps: [],
      trainingInfo: [],
      functions: [],
      graph: {
        name: 'main',
        node: [
          makeNode('Relu', ['x'], ['r']),
          makeNode('If', ['c'], ['y'], { attributes: [makeAttribute('then_branch', branch('then', 'Neg')), makeAttribute('else_branch', branch('else', 'Abs'))] }),
        ],
        initializer: [],
        input: [vi('x', DataType.FLOAT), vi('c', DataType.BOOL, [])],
        output: [vi('y', DataType.FLOAT)],
        valueInfo: [],
        quantizationAnnotation: [],
        sparseInitializer: [],
        metadataProps: [],
      },
    };
    const samples: Sample[] = [{ feeds: { x: new ort.Tensor('float32', new Float32Array([-1, 2]), [2]), c: new ort.Tensor('bool', new Uint8Array([1]), []) } }];
    await expect(captureActivations(model, ['then_out'], samples, {})).rejects.toThrow(
      'cannot capture "then_out": it is computed inside a subgraph ("then") of an If/Loop/Scan node, and only values of the main graph can be model outputs',
    );
    await expect(captureActivations(model, ['rr'], samples, {})).rejects.toThrow('cannot capture "rr": no node of the main graph produces it (did you mean "r"?)');
    await expect(captureActivations(fm, ['9.weight'], images.slice(0, 1), {})).rejects.toThrow('cannot capture "9.weight": it is a weight (initializer), not an activation');
    const got = await collectActivations(model, ['r'], samples);
    expect(Array.from(got.get('r')![0])).toEqual([0, 2]);
  });
});
