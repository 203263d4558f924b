/**
 * Silero VAD (the models @ricky0123/vad-web ships) quantized to int8, run frame by frame with their
 * recurrent state on real audio: test/fixtures/audio/vad-speech-noise-16k.wav (espeak-ng speech,
 * white noise and silence, see its README). The speech probability of the quantized model must stay
 * within 0.05 of the float32 model's on ≥ 98 % of frames.
 *
 * - legacy (Silero v4): input [1, frame] float32, sr int64 [], h and c [2, 1, 64]; 16 kHz accepts
 *   frames of 512, 1024 or 1536 samples (vad-web uses 1536). Weights are initializers of the main
 *   graph read inside If branches (8 kHz / 16 kHz models).
 * - v5: input [1, 64 + 512] (the previous frame's last 64 samples, then the frame), state [2, 1, 128],
 *   sr; its weights are Constant nodes inside the If branches.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import type { Sample } from '../src/data/types.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { readModel } from '../src/onnx/io.js';
import type { ModelProto } from '../src/onnx/types.js';
import type { QuantizeStep } from '../src/recipe/types.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { checkWebCompatibility, quantizeStep } from '../src/transforms/quantize/index.js';

const require = createRequire(import.meta.url);
const vadDir = dirname(require.resolve('@ricky0123/vad-web/dist/silero_vad_v5.onnx'));

function readWav(file: string): Float32Array {
  const buf = readFileSync(file);
  let at = 12;
  while (buf.toString('ascii', at, at + 4) !== 'data') at += 8 + buf.readUInt32LE(at + 4);
  const n = buf.readUInt32LE(at + 4) / 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = buf.readInt16LE(at + 8 + 2 * i) / 32768;
  return out;
}
const audio = readWav(new URL('./fixtures/audio/vad-speech-noise-16k.wav', import.meta.url).pathname);

type Kind = 'legacy' | 'v5';
const sr = () => new ort.Tensor('int64', BigInt64Array.of(16000n), []);

/** Feeds of frame-by-frame inference with zero state (for the web check: independent frames). */
function frameSamples(kind: Kind, frame: number, count: number): Sample[] {
  const out: Sample[] = [];
  for (let i = 0; i < count; i++) {
    const x = audio.slice(i * frame * 3, i * frame * 3 + frame + (kind === 'v5' ? 64 : 0));
    out.push({
      feeds:
        kind === 'legacy'
          ? { input: new ort.Tensor('float32', x, [1, x.length]), sr: sr(), h: new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]), c: new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]) }
          : { input: new ort.Tensor('float32', x, [1, x.length]), state: new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]), sr: sr() },
    });
  }
  return out;
}

/** Speech probability per frame, state carried from frame to frame. */
async function speechProbabilities(model: ModelProto, kind: Kind, frame: number): Promise<number[]> {
  const s = await ort.InferenceSession.create(encodeModelToBytes(model), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const probs: number[] = [];
  try {
    if (kind === 'legacy') {
      let h: ort.Tensor = new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]);
      let c: ort.Tensor = new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]);
      for (let i = 0; i + frame <= audio.length; i += frame) {
        const r = await s.run({ input: new ort.Tensor('float32', audio.slice(i, i + frame), [1, frame]), sr: sr(), h, c });
        h = r.hn as ort.Tensor;
        c = r.cn as ort.Tensor;
        probs.push((r.output.data as Float32Array)[0]);
      }
    } else {
      let state: ort.Tensor = new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]);
      let context = new Float32Array(64);
      for (let i = 0; i + frame <= audio.length; i += frame) {
        const x = new Float32Array(64 + frame);
        x.set(context);
        x.set(audio.subarray(i, i + frame), 64);
        context = audio.slice(i + frame - 64, i + frame);
        const r = await s.run({ input: new ort.Tensor('float32', x, [1, x.length]), state, sr: sr() });
        state = r.stateN as ort.Tensor;
        probs.push((r.output.data as Float32Array)[0]);
      }
    }
  } finally {
    await s.release();
  }
  return probs;
}

const int8: QuantizeStep = quantizeDefaults('int8');

describe.each([
  ['legacy', 512],
  ['v5', 512],
] as const)('Silero VAD %s, int8', (kind, frame) => {
  it(`speech probability within 0.05 of float32 on ≥ 98 % of ${frame}-sample frames; web compatible`, async () => {
    const file = join(vadDir, `silero_vad_${kind}.onnx`);
    const original = readModel(file);
    const { model, report } = await quantizeStep(int8)(original, { file, original, device: 'cpu', seed: 0, log: () => {} });
    // Conv weights are quantized wherever they live (v5: Constant nodes inside If branches).
    expect(report.layers.length).toBeGreaterThan(kind === 'v5' ? 8 : 16);
    expect(report.layers.every((l) => l.op === 'Conv' && l.dtypeAfter === 'int8')).toBe(true);
    expect(report.skipped.every((s) => /too small|rank|also read/.test(s.reason))).toBe(true);
    const ref = await speechProbabilities(original, kind, frame);
    const got = await speechProbabilities(model, kind, frame);
    const close = got.filter((p, i) => Math.abs(p - ref[i]) <= 0.05).length / got.length;
    const speech = ref.filter((p) => p > 0.5).length;
    console.log(
      `silero ${kind} int8: ${got.length} frames of ${frame} (${speech} speech), within 0.05 on ${(100 * close).toFixed(1)} %, ` +
        `max |Δp| ${Math.max(...got.map((p, i) => Math.abs(p - ref[i]))).toFixed(4)}, ${report.layers.length} weights quantized, ${report.skipped.length} skipped`,
    );
    // The audio holds both speech and non-speech frames, so agreement is not trivially "all speech".
    expect(speech).toBeGreaterThan(10);
    expect(got.length - speech).toBeGreaterThan(10);
    expect(close).toBeGreaterThanOrEqual(0.98);
    await checkWebCompatibility(model, frameSamples(kind, frame, 4));
  });

  it('float16 (overflow-prone STFT/log chains kept in float32): within 0.05 on ≥ 98 % of frames', async () => {
    const file = join(vadDir, `silero_vad_${kind}.onnx`);
    const original = readModel(file);
    const { model } = await quantizeStep({ ...int8, dtype: 'float16', float16: true })(original, { file, original, device: 'cpu', seed: 0, log: () => {} });
    const ref = await speechProbabilities(original, kind, frame);
    const got = await speechProbabilities(model, kind, frame);
    expect(got.every(Number.isFinite)).toBe(true);
    const close = got.filter((p, i) => Math.abs(p - ref[i]) <= 0.05).length / got.length;
    console.log(`silero ${kind} float16: within 0.05 on ${(100 * close).toFixed(1)} %, max |Δp| ${Math.max(...got.map((p, i) => Math.abs(p - ref[i]))).toFixed(4)}`);
    expect(close).toBeGreaterThanOrEqual(0.98);
    await checkWebCompatibility(model, frameSamples(kind, frame, 2));
  });
});
