/**
 * The inspect and repack commands, run through `main` from src/cli.ts with console output captured.
 * Expected numbers are computed here by walking the decoded models independently of src/inspect.ts.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli.js';
import type { InspectReport } from '../src/inspect.js';
import { decodeModel } from '../src/onnx/codec.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto } from '../src/onnx/types.js';

const FMNIST = resolve('test/fixtures/fmnist-cnn/model.onnx');
const SILERO = resolve('node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'cli-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')));
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')));
  try {
    const code = await main(args);
    return { code, out: out.join('\n'), err: err.join('\n') };
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

async function inspectJson(file: string): Promise<InspectReport> {
  const r = await cli('inspect', file, '--json');
  expect(r.code, r.err).toBe(0);
  return JSON.parse(r.out) as InspectReport;
}

// ---- independent walkers

const load = (file: string): ModelProto => decodeModel(readFileSync(file), file);
const elements = (t: TensorProto) => t.dims.reduce<number>((n, d) => n * Number(d), 1);

function subgraphs(n: NodeProto): GraphProto[] {
  return n.attribute.flatMap((a) => [...(a.g ? [a.g] : []), ...a.graphs]);
}

interface Walk {
  ops: Map<string, { count: number; inSub: number }>;
  initParams: number;
  initTensors: number;
  constParams: number;
  constTensors: number;
  constTensorsInSub: number;
  attrParams: number; // tensor attributes of non-Constant nodes
  subgraphs: number;
}

function walk(model: ModelProto): Walk {
  const w: Walk = { ops: new Map(), initParams: 0, initTensors: 0, constParams: 0, constTensors: 0, constTensorsInSub: 0, attrParams: 0, subgraphs: 0 };
  const visit = (g: GraphProto, inSub: boolean) => {
    for (const t of g.initializer) {
      w.initParams += elements(t);
      w.initTensors++;
    }
    for (const n of g.node) {
      const key = n.domain ? `${n.domain}:${n.opType}` : n.opType!;
      const e = w.ops.get(key) ?? { count: 0, inSub: 0 };
      e.count++;
      if (inSub) e.inSub++;
      w.ops.set(key, e);
      for (const a of n.attribute) {
        if (!a.t) continue;
        if (n.opType === 'Constant') {
          w.constParams += elements(a.t);
          w.constTensors++;
          if (inSub) w.constTensorsInSub++;
        } else w.attrParams += elements(a.t);
      }
      for (const s of subgraphs(n)) {
        w.subgraphs++;
        visit(s, true);
      }
    }
  };
  visit(model.graph!, false);
  return w;
}

// ---------------------------------------------------------------- inspect

describe('inspect: fmnist-cnn', () => {
  const model = load(FMNIST);
  const g = model.graph!;

  it('reports header, inputs/outputs, op histogram and parameters (--json)', async () => {
    const r = await inspectJson(FMNIST);
    const w = walk(model);
    expect(r.irVersion).toBe(7);
    expect(r.producer.name).toBe('pytorch');
    expect(r.opsets).toEqual([{ domain: 'ai.onnx', version: 13 }]);
    expect(r.fileBytes).toBe(statSync(FMNIST).size);
    expect(r.inputs).toEqual([{ name: 'image', type: 'float32', shape: ['batch', 1, 28, 28] }]);
    expect(r.outputs).toEqual([{ name: 'logits', type: 'float32', shape: ['batch', 10] }]);
    expect(Object.fromEntries(r.ops.map((o) => [o.op, o.count]))).toEqual({ Conv: 2, Relu: 3, MaxPool: 2, Flatten: 1, Gemm: 2 });
    expect(r.nodes.total).toBe(g.node.length);
    expect(r.subgraphs).toBe(0);

    // parameters = sum of initializer element counts; float32 → 4 bytes each
    expect(w.initParams).toBe(824_458);
    expect(r.weights.total).toEqual({ tensors: g.initializer.length, params: w.initParams, bytes: 4 * w.initParams });
    expect(r.weights.byLocation.initializer.params).toBe(w.initParams);
    expect(r.weights.byLocation.constant.tensors).toBe(0);
    expect(r.weights.byDtype).toEqual([{ dtype: 'float32', tensors: 8, params: w.initParams, bytes: 4 * w.initParams }]);

    // by consuming op: initializer names → op of the node reading them
    const byOp = new Map<string, number>();
    for (const t of g.initializer) {
      const consumer = g.node.find((n) => n.input.includes(t.name!))!;
      byOp.set(consumer.opType!, (byOp.get(consumer.opType!) ?? 0) + elements(t));
    }
    expect(byOp.get('Gemm')).toBe(256 * 3136 + 256 + 10 * 256 + 10);
    expect(byOp.get('Conv')).toBe(32 * 9 + 32 + 64 * 32 * 9 + 64);
    expect(Object.fromEntries(r.weights.byOp.map((b) => [b.op, b.params]))).toEqual(Object.fromEntries(byOp));
    expect(r.weights.external.tensors).toBe(0);
  });

  it('prints an aligned text report', async () => {
    const r = await cli('inspect', FMNIST);
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    expect(r.out).toMatch(/^inputs\s+image\s+float32\s+\[batch, 1, 28, 28\]$/m);
    expect(r.out).toMatch(/^outputs\s+logits\s+float32\s+\[batch, 10\]$/m);
    expect(r.out).toMatch(/^opsets\s+ai\.onnx 13$/m);
    expect(r.out).toMatch(/^parameters\s+824,458 in 8 tensors/m);
    expect(r.out).toMatch(/^\s+Conv\s+2$/m);
    expect(r.out).toMatch(/^\s+Gemm\s+4\s+805,642\s/m); // weights by consuming op
    expect(r.out).toMatch(/^\s+initializers\s+8\s+824,458\s/m);
  });
});

describe('inspect: Silero VAD v5 (weights in Constant nodes inside If subgraphs)', () => {
  const model = load(SILERO);

  it('counts subgraph ops and Constant-node weights (--json)', async () => {
    const r = await inspectJson(SILERO);
    const w = walk(model);
    expect(r.irVersion).toBe(8);
    expect(r.opsets).toEqual([{ domain: 'ai.onnx', version: 16 }]);
    expect(r.inputs).toEqual([
      { name: 'input', type: 'float32', shape: [null, null] },
      { name: 'state', type: 'float32', shape: [2, null, 128] },
      { name: 'sr', type: 'int64', shape: [] },
    ]);
    expect(r.outputs.map((o) => o.name)).toEqual(['output', 'stateN']);

    // op histogram, subgraphs included and marked
    expect(r.ops.length).toBe(w.ops.size);
    for (const o of r.ops) expect([o.op, o.count, o.inSubgraphs]).toEqual([o.op, w.ops.get(o.op)!.count, w.ops.get(o.op)!.inSub]);
    expect(r.ops.find((o) => o.op === 'If')).toEqual({ op: 'If', count: 25, inSubgraphs: 24 });
    expect(r.ops.find((o) => o.op === 'LSTM')).toEqual({ op: 'LSTM', count: 4, inSubgraphs: 4 });
    expect(r.ops.find((o) => o.op === 'Conv')?.count).toBe(12);
    expect(r.subgraphs).toBe(w.subgraphs);
    expect(r.subgraphs).toBeGreaterThan(2);
    expect(r.nodes.inSubgraphs).toBeGreaterThan(r.nodes.mainGraph);

    // weights: none in initializers, all in Constant nodes, nearly all inside subgraphs
    expect(w.initTensors).toBe(0);
    expect(r.weights.byLocation.initializer.tensors).toBe(0);
    expect(r.weights.byLocation.constant.tensors).toBe(w.constTensors);
    expect(r.weights.byLocation.constant.params).toBe(w.constParams);
    expect(r.weights.byLocation.constant.inSubgraphs.tensors).toBe(w.constTensorsInSub);
    expect(w.constTensorsInSub).toBeGreaterThan(300);
    expect(r.weights.total.params).toBe(w.constParams + w.attrParams);
    expect(r.weights.total.params).toBe(545_601);
    // a weight counts once, under one consumer: per-op sums equal the total
    expect(r.weights.byOp.reduce((s, b) => s + b.params, 0)).toBe(r.weights.total.params);
    expect(r.weights.byDtype.reduce((s, b) => s + b.params, 0)).toBe(r.weights.total.params);
    expect(r.weights.byOp.find((b) => b.op === 'Conv')!.params).toBeGreaterThan(200_000);
    expect(r.notes.join('\n')).toMatch(/Constant nodes inside subgraphs/);
  });

  it('says so in the text report', async () => {
    const r = await cli('inspect', SILERO);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^\s+Constant nodes\s+341\s.*in subgraphs\)$/m);
    expect(r.out).toMatch(/live in Constant nodes inside subgraphs/);
    expect(r.out).toMatch(/^\s+If\s+25\s+24$/m);
    expect(r.out).toMatch(/^inputs\s+input\s+float32\s+\[\?, \?\]$/m);
    expect(r.out).toMatch(/^\s+state\s+float32\s+\[2, \?, 128\]$/m);
    expect(r.out).toMatch(/^\s+sr\s+int64\s+\[\]$/m);
  });
});

// ---------------------------------------------------------------- repack

describe('repack', () => {
  it('without flags writes byte-identical files', async () => {
    for (const [src, name] of [[FMNIST, 'fmnist.onnx'], [SILERO, 'silero.onnx']]) {
      const out = join(tmp, name);
      const r = await cli('repack', src, out);
      expect(r.code, r.err).toBe(0);
      expect(Buffer.compare(readFileSync(out), readFileSync(src))).toBe(0);
    }
  });

  it('--external-data then --inline round-trips byte for byte, 4096-aligned, loadable by ORT', async () => {
    const ext = join(tmp, 'ext.onnx');
    let r = await cli('repack', FMNIST, ext, '--external-data');
    expect(r.code, r.err).toBe(0);
    const dataFile = `${ext}.data`;
    expect(existsSync(dataFile)).toBe(true);
    const m = load(ext);
    const dataSize = statSync(dataFile).size;
    let external = 0;
    for (const t of m.graph!.initializer) {
      const kv = Object.fromEntries(t.externalData.map((e) => [e.key, e.value]));
      if (t.dataLocation === 1) {
        external++;
        expect(kv.location).toBe('ext.onnx.data');
        expect(Number(kv.offset) % 4096).toBe(0);
        expect(Number(kv.length)).toBe(4 * elements(t));
        expect(Number(kv.offset) + Number(kv.length)).toBeLessThanOrEqual(dataSize);
        expect(t.rawData).toBeUndefined();
      } else {
        expect(t.rawData!.length).toBeLessThan(1024); // small tensors stay inline
      }
    }
    expect(external).toBe(5); // both Gemm weights, both Conv weights, the 256-float Gemm bias
    expect(statSync(ext).size).toBeLessThan(4096);

    // inspect reports the external file without loading it
    const rep = await inspectJson(ext);
    expect(rep.weights.external.tensors).toBe(5);
    expect(rep.weights.external.files).toEqual([
      expect.objectContaining({ location: 'ext.onnx.data', tensors: 5, sizeOnDisk: dataSize }),
    ]);
    expect(rep.weights.total.params).toBe(824_458);

    // ORT runs the external-data model with the same outputs
    const x = new ort.Tensor('float32', Float32Array.from({ length: 784 }, (_, i) => (i % 29) / 29), [1, 1, 28, 28]);
    const run = async (f: string) => {
      const s = await ort.InferenceSession.create(f, { intraOpNumThreads: 1 });
      const y = (await s.run({ image: x })).logits.data as Float32Array;
      await s.release();
      return Array.from(y);
    };
    expect(await run(ext)).toEqual(await run(FMNIST));

    // no flags on an external model keeps external data (next to the new output)
    const ext2 = join(tmp, 'ext2.onnx');
    r = await cli('repack', ext, ext2);
    expect(r.code, r.err).toBe(0);
    expect(Buffer.compare(readFileSync(`${ext2}.data`), readFileSync(dataFile))).toBe(0);

    const back = join(tmp, 'back.onnx');
    r = await cli('repack', ext, back, '--inline');
    expect(r.code, r.err).toBe(0);
    expect(Buffer.compare(readFileSync(back), readFileSync(FMNIST))).toBe(0);
  });

  it('--external-data=name writes the named file next to the output', async () => {
    const out = join(tmp, 'named.onnx');
    const r = await cli('repack', FMNIST, out, '--external-data=weights.bin');
    expect(r.code, r.err).toBe(0);
    expect(statSync(join(tmp, 'weights.bin')).size).toBeGreaterThan(3_000_000);
    const back = join(tmp, 'named-back.onnx');
    expect((await cli('repack', out, back, '--inline')).code).toBe(0);
    expect(Buffer.compare(readFileSync(back), readFileSync(FMNIST))).toBe(0);
  });

  it('refuses bad usage with exit 2', async () => {
    for (const args of [
      ['repack'],
      ['repack', FMNIST],
      ['repack', FMNIST, join(tmp, 'x.onnx'), '--frobnicate'],
      ['repack', FMNIST, join(tmp, 'x.onnx'), '--inline', '--external-data'],
      ['repack', FMNIST, join(tmp, 'x.onnx'), '--external-data=../escape.bin'],
      ['repack', FMNIST, join(tmp, 'x.onnx'), 'extra'],
      ['inspect'],
      ['inspect', FMNIST, '--yaml'],
    ]) {
      const r = await cli(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(/usage: onnx-compress (repack|inspect)/);
    }
    expect(existsSync(join(tmp, 'x.onnx'))).toBe(false);
  });
});

// ---------------------------------------------------------------- errors

describe('errors', () => {
  it('a missing file: exit 2, one line naming the path, no stack', async () => {
    const missing = join(tmp, 'does-not-exist.onnx');
    for (const args of [['inspect', missing], ['repack', missing, join(tmp, 'y.onnx')]]) {
      const r = await cli(...args);
      expect(r.code).toBe(2);
      expect(r.out).toBe('');
      expect(r.err.split('\n')).toHaveLength(1);
      expect(r.err).toContain(missing);
      expect(r.err).toMatch(/ENOENT/);
      expect(r.err).not.toMatch(/\n\s+at /);
      expect(r.err).not.toMatch(/internal error/);
    }
  });

  it('a truncated model: exit 2 with the byte offset', async () => {
    const bytes = readFileSync(FMNIST);
    const cut = join(tmp, 'truncated.onnx');
    writeFileSync(cut, bytes.subarray(0, 100_000));
    for (const args of [['inspect', cut], ['repack', cut, join(tmp, 'z.onnx')]]) {
      const r = await cli(...args);
      expect(r.code).toBe(2);
      expect(r.err.split('\n')).toHaveLength(1);
      expect(r.err).toContain(cut);
      expect(r.err).toMatch(/byte \d+/);
    }
    expect(existsSync(join(tmp, 'z.onnx'))).toBe(false);
  });
});

// ---------------------------------------------------------------- inspectModel on a hand-built model

describe('inspectModel', () => {
  it('qualifies domains, scopes outer reads, counts shared weights once', async () => {
    const { inspectModel } = await import('../src/inspect.js');
    const { makeAttribute, makeNode } = await import('../src/onnx/graph.js');
    const { makeTensor } = await import('../src/onnx/tensor.js');
    const { DataType } = await import('../src/onnx/dtypes.js');
    const f32 = (name: string, dims: number[]) => makeTensor(name, DataType.FLOAT, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)));
    const graph = (name: string, node: NodeProto[], initializer: TensorProto[], output: string[], input: string[] = []): GraphProto => ({
      name, node, initializer,
      input: input.map((n) => ({ name: n, metadataProps: [] })),
      output: output.map((n) => ({ name: n, metadataProps: [] })),
      valueInfo: [], quantizationAnnotation: [], sparseInitializer: [], metadataProps: [],
    });
    // then-branch reads the outer W through MatMul; else-branch shadows W with its own Constant
    const thenG = graph('then', [makeNode('MatMul', ['x', 'W'], ['t'])], [], ['t']);
    const elseG = graph('else', [
      makeNode('Constant', [], ['W'], { attributes: [makeAttribute('value', f32('W_else', [4, 4]))] }),
      makeNode('Gemm', ['x', 'W'], ['e']),
    ], [], ['e']);
    const main = graph('main', [
      makeNode('Mul', ['x', 'S'], ['x2']), // S: first consumer Mul
      makeNode('Add', ['x2', 'S'], ['x3']), // S again: counted once
      makeNode('MatMulNBits', ['x3', 'Q'], ['x4'], { domain: 'com.microsoft' }),
      makeNode('If', ['cond'], ['y'], { attributes: [makeAttribute('then_branch', thenG), makeAttribute('else_branch', elseG)] }),
      makeNode('Constant', [], ['k'], { attributes: [makeAttribute('value', f32('k', [3]))] }),
    ], [f32('S', [2]), f32('W', [4, 4]), makeTensor('Q', DataType.UINT8, [8], new Uint8Array(8)), f32('unused', [5])], ['y', 'k'], ['x', 'cond']);
    const model: ModelProto = { irVersion: 8, graph: main, opsetImport: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }], metadataProps: [], trainingInfo: [], functions: [] };

    const r = inspectModel(model);
    expect(r.ops.find((o) => o.op === 'com.microsoft:MatMulNBits')).toEqual({ op: 'com.microsoft:MatMulNBits', count: 1, inSubgraphs: 0 });
    expect(r.ops.find((o) => o.op === 'Gemm')).toEqual({ op: 'Gemm', count: 1, inSubgraphs: 1 });
    expect(r.subgraphs).toBe(2);
    const byOp = Object.fromEntries(r.weights.byOp.map((b) => [b.op, [b.tensors, b.params, b.bytes]]));
    expect(byOp).toEqual({
      Mul: [1, 2, 8],
      MatMul: [1, 16, 64], // outer W read inside the then-branch
      Gemm: [1, 16, 64], // the else-branch's own W
      'com.microsoft:MatMulNBits': [1, 8, 8],
      '(graph output)': [1, 3, 12],
      '(unused)': [1, 5, 20],
    });
    expect(r.weights.total).toEqual({ tensors: 6, params: 50, bytes: 176 });
    expect(r.weights.byLocation.constant).toEqual({ tensors: 2, params: 19, bytes: 76, inSubgraphs: { tensors: 1, params: 16, bytes: 64 } });
    expect(r.weights.byDtype.map((d) => [d.dtype, d.params])).toEqual([['float32', 42], ['uint8', 8]]);
  });
});
