/**
 * Silero VAD (the models @ricky0123/vad-web ships) run as an app runs it: frame by frame, 16 kHz, the
 * recurrent state carried from frame to frame.
 *
 * - legacy (Silero v4): input [1, frame] float32, sr int64 [], h and c [2, 1, 64] → output, hn, cn.
 * - v5: input [1, 64 + frame] (the previous frame's last 64 samples, then the frame), state [2, 1, 128]
 *   → output, stateN; sr.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Tensor, InferenceSession } from 'onnxruntime-node';
import type { Sample } from '../../src/data/types.js';
import { encodeModelToBytes } from '../../src/onnx/codec.js';
import type { ModelProto } from '../../src/onnx/types.js';

export type VadKind = 'legacy' | 'v5';

const require = createRequire(import.meta.url);
export const vadDir = dirname(require.resolve('@ricky0123/vad-web/dist/silero_vad_v5.onnx'));
export const vadFile = (kind: VadKind) => join(vadDir, `silero_vad_${kind}.onnx`);
/** What each model carries: output → input. */
export const VAD_CARRY: Record<VadKind, Record<string, string>> = { legacy: { hn: 'h', cn: 'c' }, v5: { stateN: 'state' } };

/** A 16-bit PCM mono WAV file as floats in [-1, 1). */
export function readWav(file: string): Float32Array {
  const buf = readFileSync(file);
  let at = 12;
  while (buf.toString('ascii', at, at + 4) !== 'data') at += 8 + buf.readUInt32LE(at + 4);
  const n = buf.readUInt32LE(at + 4) / 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = buf.readInt16LE(at + 8 + 2 * i) / 32768;
  return out;
}

const sr = () => new Tensor('int64', BigInt64Array.of(16000n), []);

/**
 * One sample per frame, in order, each with a zero state: with `carry: VAD_CARRY[kind]` the pipeline
 * (or evaluateModels) replaces the state by the carried one.
 */
export function vadFrames(kind: VadKind, audio: Float32Array, frame = 512): Sample[] {
  const out: Sample[] = [];
  let context = new Float32Array(64);
  for (let i = 0; i + frame <= audio.length; i += frame) {
    if (kind === 'legacy') {
      const zero = () => new Tensor('float32', new Float32Array(128), [2, 1, 64]);
      out.push({ feeds: { input: new Tensor('float32', audio.slice(i, i + frame), [1, frame]), sr: sr(), h: zero(), c: zero() } });
    } else {
      const x = new Float32Array(64 + frame);
      x.set(context);
      x.set(audio.subarray(i, i + frame), 64);
      context = audio.slice(i + frame - 64, i + frame);
      out.push({ feeds: { input: new Tensor('float32', x, [1, x.length]), state: new Tensor('float32', new Float32Array(256), [2, 1, 128]), sr: sr() } });
    }
  }
  return out;
}

/** Speech probability per frame, state carried from frame to frame. */
export async function vadProbabilities(model: ModelProto | Uint8Array, kind: VadKind, frames: Sample[]): Promise<number[]> {
  const s = await InferenceSession.create(model instanceof Uint8Array ? model : encodeModelToBytes(model), { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const carry = VAD_CARRY[kind];
  const probs: number[] = [];
  try {
    let state: Record<string, Tensor> = {};
    for (const f of frames) {
      const r = await s.run({ ...f.feeds, ...state });
      state = Object.fromEntries(Object.entries(carry).map(([o, i]) => [i, r[o] as Tensor]));
      probs.push((r.output.data as Float32Array)[0]);
    }
  } finally {
    await s.release();
  }
  return probs;
}

/** Fraction of frames within `tol` of the reference, and the largest difference. */
export function agreementWithin(ref: number[], got: number[], tol = 0.05): { within: number; maxAbs: number } {
  let n = 0;
  let maxAbs = 0;
  ref.forEach((p, i) => {
    const d = Math.abs(p - got[i]);
    if (d <= tol) n++;
    if (!(d <= maxAbs)) maxAbs = d;
  });
  return { within: n / ref.length, maxAbs };
}
