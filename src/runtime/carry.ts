/**
 * Streaming / stateful models (VAD, wake-word, RNN-T, decoders with a cache): an app runs them call after
 * call and feeds some outputs back as the next call's inputs (Silero VAD v5: `stateN` → `state`). A
 * recipe's `carry: { stateN: state }` (output → input) says so; samples are then one sequence, run in
 * order, and each sample's carried inputs are replaced by the previous run's outputs. The first sample's
 * own values start the sequence.
 *
 * Calibration (and everything that reads calibration samples: GPTQ Hessians, activation statistics,
 * distillation) does not need to know: `carryStates` runs the source model once over the samples and
 * writes the states it carries into them, so every later pass sees the states an app's model would see.
 * Evaluation runs both models with their own carried state (src/eval/evaluate.ts), so its metrics measure
 * the drift an app sees.
 */
import type * as ort from 'onnxruntime-node';
import type { Sample } from '../data/types.js';
import type { ModelProto } from '../onnx/types.js';
import { openSession, runSession, type DeviceRequest } from './session.js';

/** Output name → the input it feeds in the next call. */
export type Carry = Record<string, string>;

/** The feeds of one call: the sample's own, with carried inputs replaced by the state (when there is one). */
export function carriedFeeds(feeds: Record<string, ort.Tensor>, state: Record<string, ort.Tensor> | undefined): Record<string, ort.Tensor> {
  return state ? { ...feeds, ...state } : feeds;
}

/** The state the next call gets from this call's outputs (input name → tensor). */
export function nextState(outputs: Record<string, ort.Tensor>, carry: Carry): Record<string, ort.Tensor> {
  const state: Record<string, ort.Tensor> = {};
  for (const [output, input] of Object.entries(carry)) state[input] = outputs[output];
  return state;
}

export interface CarryOptions {
  device?: DeviceRequest;
  intraOpThreads?: number;
}

/**
 * The samples with their carried inputs set to the states `model` carries along the sequence (the first
 * sample is unchanged). Runs the model once per sample, in order.
 */
export async function carryStates(model: ModelProto | Uint8Array | string, samples: Sample[], carry: Carry, opts: CarryOptions = {}): Promise<Sample[]> {
  if (samples.length < 2 || Object.keys(carry).length === 0) return samples;
  const { session } = await openSession(model, { device: opts.device ?? 'cpu', intraOpThreads: opts.intraOpThreads ?? 1 });
  const fetches = Object.keys(carry);
  const out: Sample[] = [];
  try {
    let state: Record<string, ort.Tensor> | undefined;
    for (const s of samples) {
      const feeds = carriedFeeds(s.feeds, state);
      out.push(state ? { ...s, feeds } : s);
      state = nextState(await runSession(session, feeds, fetches), carry);
    }
  } finally {
    await session.release();
  }
  return out;
}
