/**
 * The device guard of logit distillation (src/transforms/distill/gradcheck.ts), without a GPU: the
 * comparison is a pure function, and the fallback is driven by an injected "device" runner that
 * returns the CPU's gradients perturbed.
 */
import { Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type * as ort from 'onnxruntime-node';
import type { Sample } from '../src/data/types.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeNode } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { compareGradients, GRADIENT_TOLERANCE, guardDevice, openRunner, relativeL2, type GradientRunner, type OpenRunner } from '../src/transforms/distill/gradcheck.js';
import { distillLogits } from '../src/transforms/distill/logits.js';
import { TeacherLogits } from '../src/transforms/distill/teacher.js';

const grads = (entries: Record<string, number[]>) => new Map(Object.entries(entries).map(([k, v]) => [k, Float32Array.from(v)]));

describe('compareGradients', () => {
  it('relative L2 difference per parameter', () => {
    expect(relativeL2([3, 4], [3, 4])).toBe(0);
    expect(relativeL2([3, 4], [3, 4.05])).toBeCloseTo(0.01, 6);
    expect(relativeL2([0, 0], [0, 0])).toBe(0);
    expect(relativeL2([0, 0], [0, 1e-9])).toBe(Infinity);
    expect(relativeL2([1, 2], [1, NaN])).toBe(Infinity);
    expect(relativeL2([1, 2], [1])).toBe(Infinity);
  });

  it('passes rounding noise, names the parameters over the tolerance, worst first', () => {
    const cpu = grads({ w: [1, -2, 3, 0.5], b: [0.1, 0.2], s: [10, 20] });
    expect(GRADIENT_TOLERANCE).toBe(1e-3);
    const same = compareGradients(cpu, grads({ w: [1, -2, 3 + 1e-6, 0.5], b: [0.1, 0.2], s: [10, 20] }));
    expect(same.ok).toBe(true);
    expect(same.mismatched).toEqual([]);
    expect(same.worst!.param).toBe('w');
    expect(same.worst!.difference).toBeLessThan(1e-6);

    const off = compareGradients(cpu, grads({ w: [1, -2, 3, 0.5], b: [0.1, 0.25], s: [10, 20.1] }));
    expect(off.ok).toBe(false);
    expect(off.mismatched.map((d) => d.param)).toEqual(['b', 's']);
    expect(off.mismatched[0].difference).toBeCloseTo(0.05 / Math.hypot(0.1, 0.2), 5);
    expect(off.differences).toHaveLength(3);
  });

  it('a missing or non-finite gradient is a mismatch; a zero gradient tolerates noise far below the others', () => {
    const cpu = grads({ w: [1, 2], z: [0, 0] });
    expect(compareGradients(cpu, grads({ w: [1, 2] })).mismatched).toEqual([{ param: 'z', difference: Infinity }]);
    expect(compareGradients(cpu, grads({ w: [1, Infinity], z: [0, 0] })).mismatched[0].param).toBe('w');
    expect(compareGradients(cpu, grads({ w: [1, 2], z: [1e-12, 0] })).ok).toBe(true);
    expect(compareGradients(cpu, grads({ w: [1, 2], z: [1e-3, 0] })).ok).toBe(false);
  });
});

// ------------------------------------------------------------------------------ the fallback path

/** logits = x·w + b, x [N, 4] (N symbolic). */
function tinyModel(): ModelProto {
  const f = (name: string, dims: number[], values: number[]) => makeTensor(name, DataType.FLOAT, dims, Float32Array.from(values));
  const w = Array.from({ length: 12 }, (_, i) => Math.sin(i + 1) * 0.5);
  return {
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
    graph: {
      name: 'tiny',
      node: [makeNode('MatMul', ['x', 'w'], ['h'], { name: 'mm' }), makeNode('Add', ['h', 'b'], ['logits'], { name: 'add' })],
      initializer: [f('w', [4, 3], w), f('b', [3], [0.1, -0.2, 0.05])],
      input: [{ name: 'x', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 4 }] } } }, metadataProps: [] }],
      output: [{ name: 'logits', type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimParam: 'N' }, { dimValue: 3 }] } } }, metadataProps: [] }],
      valueInfo: [],
      quantizationAnnotation: [],
      sparseInitializer: [],
      metadataProps: [],
    },
  };
}

const samples: Sample[] = Array.from({ length: 16 }, (_, i) => ({
  feeds: { x: new Tensor('float32', Float32Array.from({ length: 4 }, (_, j) => Math.cos(i * 4 + j)), [1, 4]) },
  label: i % 3,
}));

/**
 * Opens runners on the CPU, except the first: a "webgpu" runner (the CPU's session with the fetched
 * gradients of the parameters in `perturb` multiplied by `scale`). Everything stays on the CPU, so
 * the test runs the same with or without a GPU.
 */
function fakeDevice(scale: number, perturb: string[], log: string[]): OpenRunner {
  let opened = 0;
  return async (model) => {
    const cpu = await openRunner(model, { device: 'cpu' });
    if (opened++ > 0) {
      log.push('open cpu');
      return { ...cpu, release: async () => (log.push('release cpu'), cpu.release()) };
    }
    log.push('open webgpu');
    const runner: GradientRunner = {
      device: 'webgpu',
      run: async (feeds, fetches) => {
        const out = await cpu.run(feeds, fetches);
        const scaled: Record<string, ort.Tensor> = { ...out };
        for (const p of perturb) {
          const name = `grad/${p}`;
          const t = out[name];
          if (t) scaled[name] = new Tensor('float32', Float32Array.from(t.data as Float32Array, (v) => v * scale), t.dims);
        }
        return scaled;
      },
      release: async () => (log.push('release webgpu'), cpu.release()),
    };
    return runner;
  };
}

describe('distill: a device with wrong gradients falls back to the CPU', () => {
  const model = tinyModel();
  const train = (openRunner?: OpenRunner) =>
    TeacherLogits.compute(model, samples).then((teacher) =>
      distillLogits(model, samples, teacher, { temperature: 2, learningRate: 1e-2, batchSize: 4, steps: 6, labels: true, seed: 3, plateauSteps: 0, openRunner }),
    );

  it('guardDevice: the CPU runner replaces a device whose gradients are off, and the device runner is released', async () => {
    const log: string[] = [];
    const open = fakeDevice(1.01, ['b'], log);
    // Any graph with outputs named like gradients will do: "gradients" of w and b computed from x.
    const g = model.graph!;
    const idModel: ModelProto = {
      ...model,
      graph: {
        ...g,
        node: [makeNode('Identity', ['x'], ['grad/w'], { name: 'i1' }), makeNode('ReduceSum', ['x'], ['grad/b'], { name: 'i2' })],
        initializer: [],
        output: [{ name: 'grad/w', metadataProps: [] }, { name: 'grad/b', metadataProps: [] }],
      },
    };
    const dev = await open(idModel, 'gpu');
    log.length = 0;
    const result = await guardDevice(dev, () => open(idModel, 'cpu'), samples[0].feeds, new Map([['w', 'grad/w'], ['b', 'grad/b']]));
    expect(result.runner.device).toBe('cpu');
    expect(result.check).toMatchObject({ device: 'webgpu', fellBack: true, tolerance: 1e-3, worst: { param: 'b' } });
    expect(result.check!.worst!.difference).toBeCloseTo(0.01, 4);
    expect(result.warning).toMatch(/gradients on webgpu differ from the CPU's: parameter "b" has a relative L2 difference of 1\.00e-2 \(tolerance 1\.00e-3\); training on the CPU instead/);
    expect(log).toEqual(['open cpu', 'release webgpu']);
    await result.runner.release();
  });

  it('distillLogits trains on the CPU, with the warning, and the same curve as a CPU run', async () => {
    const log: string[] = [];
    const onCpu = await train();
    expect(onCpu.gradientCheck).toBeUndefined();
    expect(onCpu.warnings).toEqual([]);

    const wrong = await train(fakeDevice(1.5, ['w'], log));
    expect(wrong.device).toBe('cpu');
    expect(wrong.gradientCheck).toMatchObject({ device: 'webgpu', fellBack: true, worst: { param: 'w' } });
    expect(wrong.gradientCheck!.worst!.difference).toBeCloseTo(0.5, 4);
    expect(wrong.warnings).toHaveLength(1);
    expect(wrong.warnings[0]).toMatch(/webgpu.*"w".*5\.00e-1.*training on the CPU instead/);
    expect(wrong.curve).toEqual(onCpu.curve);
    expect(log).toEqual(['open webgpu', 'open cpu', 'release webgpu', 'release cpu']);
  });

  it('a device within the tolerance keeps training on it', async () => {
    const log: string[] = [];
    const close = await train(fakeDevice(1 + 1e-5, ['w', 'b'], log));
    expect(close.device).toBe('webgpu');
    expect(close.gradientCheck).toMatchObject({ device: 'webgpu', fellBack: false, mismatched: [] });
    expect(close.gradientCheck!.worst!.difference).toBeLessThan(1e-4);
    expect(close.warnings).toEqual([]);
    expect(log).toEqual(['open webgpu', 'open cpu', 'release cpu', 'release webgpu']);
  });
});
