/**
 * Silero VAD (the models @ricky0123/vad-web ships) quantized, run frame by frame with their recurrent
 * state carried, as an app runs them (bench/lib/vad.ts), on held-out audio never used to calibrate:
 * test/fixtures/audio/vad-heldout-16k.wav (six espeak-ng voices in five languages, at several loudness
 * levels, over white, low-passed and hum noise; see its README). The speech probability of the int8
 * model must stay within 0.05 of the float32 model's on ≥ 99 % of frames; so must a plain int4 / q4f16
 * request, whose layers that feed the carried state are delivered 8-bit (src/transforms/quantize/recurrent.ts).
 *
 * - legacy (Silero v4): input [1, frame] float32, sr int64 [], h and c [2, 1, 64]; 16 kHz accepts
 *   frames of 512, 1024 or 1536 samples (vad-web uses 1536). Weights are initializers of the main
 *   graph read inside If branches (8 kHz / 16 kHz models).
 * - v5: input [1, 64 + 512] (the previous frame's last 64 samples, then the frame), state [2, 1, 128],
 *   sr; its weights are Constant nodes inside the If branches.
 */
import { describe, expect, it } from 'vitest';
import { agreementWithin, readWav, vadFile, vadFrames, vadProbabilities } from '../bench/lib/vad.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { readModel } from '../src/onnx/io.js';
import type { QuantizeStep } from '../src/recipe/types.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { checkWebCompatibility, quantizeStep } from '../src/transforms/quantize/index.js';

const audio = readWav(new URL('./fixtures/audio/vad-heldout-16k.wav', import.meta.url).pathname);

const int8: QuantizeStep = quantizeDefaults('int8');

describe.each([
  ['legacy', 512],
  ['v5', 512],
] as const)('Silero VAD %s, int8', (kind, frame) => {
  it(`speech probability within 0.05 of float32 on ≥ 99 % of ${frame}-sample frames; web compatible`, async () => {
    const file = vadFile(kind);
    const original = readModel(file);
    const { model, report } = await quantizeStep(int8)(original, { file, original, device: 'cpu', seed: 0, log: () => {} });
    // Conv weights are quantized wherever they live (v5: Constant nodes inside If branches).
    expect(report.layers.length).toBeGreaterThanOrEqual(kind === 'v5' ? 8 : 34);
    expect(report.layers.every((l) => (l.op === 'Conv' || l.op === 'LSTM') && l.dtypeAfter === 'int8')).toBe(true);
    // legacy's LSTM weights (W and R of 8 LSTMs) are int8 per gate row too; v5 reads its LSTM weights through Slice.
    expect(report.layers.filter((l) => l.op === 'LSTM').length).toBe(kind === 'legacy' ? 16 : 0);
    expect(report.skipped.every((s) => /too small|rank|also read|filterbank/.test(s.reason))).toBe(true);
    // The STFT bases (1 input channel, 128–256 taps) stay float: their rounding noise is what drifted.
    expect(report.skipped.filter((s) => /filterbank/.test(s.reason)).length).toBe(2);
    const frames = vadFrames(kind, audio, frame);
    const ref = await vadProbabilities(original, kind, frames);
    const got = await vadProbabilities(model, kind, frames);
    const { within: close, maxAbs } = agreementWithin(ref, got);
    const speech = ref.filter((p) => p > 0.5).length;
    console.log(
      `silero ${kind} int8: ${got.length} frames of ${frame} (${speech} speech), within 0.05 on ${(100 * close).toFixed(1)} %, ` +
        `max |Δp| ${maxAbs.toFixed(4)}, ${report.layers.length} weights quantized, ${report.skipped.length} skipped`,
    );
    // The audio holds both speech and non-speech frames, so agreement is not trivially "all speech".
    expect(speech).toBeGreaterThan(10);
    expect(got.length - speech).toBeGreaterThan(10);
    expect(close).toBeGreaterThanOrEqual(0.99);
    await checkWebCompatibility(model, vadFrames(kind, audio, frame).slice(100, 104));
  });

  it.each([
    { name: 'int4', extra: {} },
    { name: 'q4f16', extra: { float16: true } },
  ])('$name: what feeds the carried state is delivered 8-bit (said per layer); ≥ 0.99 of frames within 0.05; not larger than int8', async ({ name, extra }) => {
    const file = vadFile(kind);
    const original = readModel(file);
    const ctx = { file, original, device: 'cpu' as const, seed: 0, log: () => {} };
    const { model, report } = await quantizeStep({ ...quantizeDefaults('int4'), ...extra })(original, ctx);
    // What feeds an LSTM whose state is carried: v5, its 8 encoder Convs (both sample rates); legacy, its
    // Convs and the W and R of the 4 LSTMs that take h/c (26 weights, 2 of them [258, 1, 5] Convs whose
    // 4-bit form is not smaller: that reason comes first). Stated per layer and in one warning line.
    const feeding = report.layers.filter((l) => /feeds the recurrent state carried from call to call/.test(l.reason ?? ''));
    expect(feeding.length).toBe(kind === 'v5' ? 8 : 24);
    expect(feeding.every((l) => l.requested === 'int4:32' && l.delivered === 'int8')).toBe(true);
    expect(report.warnings.filter((w) => /delivered at another precision than the requested int4:32/.test(w))).toHaveLength(1);
    const frames = vadFrames(kind, audio, frame);
    const ref = await vadProbabilities(original, kind, frames);
    const got = await vadProbabilities(model, kind, frames);
    const { within: close, maxAbs } = agreementWithin(ref, got);
    const eight = await quantizeStep(int8)(original, ctx);
    const [bytes, bytes8] = [encodeModelToBytes(model).byteLength, encodeModelToBytes(eight.model).byteLength];
    console.log(`silero ${kind} ${name}: within 0.05 on ${(100 * close).toFixed(1)} %, max |Δp| ${maxAbs.toFixed(4)}, ${bytes} B (int8 ${bytes8} B)`);
    expect(close).toBeGreaterThanOrEqual(0.99);
    expect(bytes).toBeLessThanOrEqual(bytes8);
  });

  it('float16 (overflow-prone STFT/log chains kept in float32): within 0.05 on ≥ 99 % of frames', async () => {
    const file = vadFile(kind);
    const original = readModel(file);
    const { model } = await quantizeStep({ ...int8, dtype: 'float16', float16: true })(original, { file, original, device: 'cpu', seed: 0, log: () => {} });
    const frames = vadFrames(kind, audio, frame);
    const ref = await vadProbabilities(original, kind, frames);
    const got = await vadProbabilities(model, kind, frames);
    expect(got.every(Number.isFinite)).toBe(true);
    const { within: close, maxAbs } = agreementWithin(ref, got);
    console.log(`silero ${kind} float16: within 0.05 on ${(100 * close).toFixed(1)} %, max |Δp| ${maxAbs.toFixed(4)}`);
    expect(close).toBeGreaterThanOrEqual(0.99);
    await checkWebCompatibility(model, frames.slice(100, 102));
  });
});
