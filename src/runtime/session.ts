/**
 * onnxruntime sessions with the project's defaults: one place that picks the device, sets thread
 * counts and turns ORT's failures into CompressErrors.
 *
 * Devices:
 * - `cpu`: the CPU execution provider.
 * - `gpu`: the CUDA EP, then the WebGPU EP, each tried alone (ORT does not fall back by itself: an EP
 *   list `['webgpu', 'cpu']` fails as a whole when WebGPU has no adapter). When none works the error
 *   lists every provider tried and ORT's reason.
 * - `auto`: the `gpu` path, then the CPU, silently when the machine has no usable GPU provider (the
 *   caller records the device it got). A user who did not ask for a GPU should not read a GPU warning
 *   on every build of every model.
 *
 * Which GPU provider works is probed once per process (gpu.ts). A GPU provider that passed the probe but
 * fails on a real model is an error for `gpu` and falls back to the CPU for `auto` with one warning per
 * process (returned by the first session that hits it).
 *
 * Threads: several sessions on few cores each spin their own pool (9 sessions made small runs 30×
 * slower on 2 cores; docs/facts.md, "Sessions and threads"), so the default is 1 intra-op thread, 1 inter-op thread and no spinning; pass
 * `intraOpThreads` for a session that runs alone.
 */
import * as ort from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { passSessionGate } from './gate.js';
import { decodeModel, encodeModelToBytes } from '../onnx/codec.js';
import { readModelLazy, withLazyLoaded } from '../onnx/lazy.js';
import { integerKernelsSaturate, quantizesActivations } from './integer-kernels.js';
import type { ModelProto } from '../onnx/types.js';
import { trimOrtMessage } from './ort-message.js';
import { probeGpu, resetGpuProbe as resetProbe, type ProbeResult } from './gpu.js';
import type { InputSpec } from '../data/types.js';
import type { Device as DeviceChoice } from '../device.js';

// Also here for the callers that run sessions anyway; gpu.ts, specs.ts and ort-message.ts load no
// native library, for those that may run none.
export { probeGpu, trimOrtMessage };
export { inputSpecs, outputNames, outputSpecs } from './specs.js';

/** What a caller asks for; `Device` below is what it got. */
export type DeviceRequest = DeviceChoice;
export type Device = 'cpu' | 'cuda' | 'webgpu';

export interface SessionOptions {
  /** Default 'cpu'. */
  device?: DeviceRequest;
  /** intraOpNumThreads (default 1). */
  intraOpThreads?: number;
  /** Graph optimization level (default 'all'). */
  optimization?: 'all' | 'basic' | 'disabled';
  /** External data files for a model given as bytes (paths as the model's tensors name them). */
  externalData?: { path: string; data: Uint8Array }[];
  /**
   * Let ORT pre-pack weights for its kernels (default true). Pre-packing pays off over many runs; a
   * session run once (verification) only pays its time and a second copy of the weights in memory.
   */
  prepacking?: boolean;
  /**
   * Compute quantized matmuls with float activations (`session.qdq_matmulnbits_accuracy_level` = 1), as
   * onnxruntime-web's wasm kernels do. By default ORT fuses DequantizeLinear → MatMul into MatMulNBits
   * with int8 activations, whose outputs differ from wasm's by up to ~1e-3 of their range.
   */
  floatActivations?: boolean;
  /**
   * Whether the model quantizes activations (integer-kernels.ts), where the caller knows; otherwise
   * openSession looks, on a CPU whose 8-bit kernels saturate (a file is skimmed for it).
   */
  quantizedActivations?: boolean;
  /** Let idle pool threads spin (onnxruntime's default; off here unless asked: sessions share few cores). */
  spinning?: boolean;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  device: Device;
  warnings: string[];
}

/** `unfusedQdq`: onnxruntime's QDQ fusions off (integer-kernels.ts). */
function baseOptions(opts: SessionOptions, unfusedQdq = false): ort.InferenceSession.SessionOptions {
  const o: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: opts.intraOpThreads ?? 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: opts.optimization ?? 'all',
    logSeverityLevel: 3,
    // A session run once gains nothing from ORT's memory arena, which grows in powers of two.
    ...(opts.prepacking === false && { enableCpuMemArena: false }),
    extra: {
      session: {
        // Spinning threads are onnxruntime's default; sessions here share few cores, so they wait instead.
        ...(!opts.spinning && { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } }),
        ...(opts.prepacking === false && { disable_prepacking: '1' }),
        ...(opts.floatActivations && { qdq_matmulnbits_accuracy_level: '1' }),
        ...(unfusedQdq && { disable_quant_qdq: '1' }),
      },
    },
  };
  if (opts.externalData?.length) {
    (o as { externalData?: unknown }).externalData = opts.externalData.map((d) => ({ path: d.path, data: d.data }));
  }
  return o;
}

/** `InferenceSession.create` behind the build's session gate (gate.ts): what every in-process session of a user's model goes through. */
export async function createSession(model: Uint8Array | string, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  await passSessionGate();
  return typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options);
}
const create = createSession;

/** Notices already returned in this process: each is given once, not once per session or model. */
const given = new Set<string>();
function once(key: string, message: string, into: string[]): void {
  if (given.has(key)) return;
  given.add(key);
  into.push(message);
}

/** Forgets the cached probe and the notices already given (tests). */
export function resetGpuProbe(): void {
  resetProbe();
  given.clear();
}

function modelSource(model: ModelProto | Uint8Array | string): Uint8Array | string {
  if (typeof model === 'string' || model instanceof Uint8Array) return model;
  // onnxruntime reads bytes: tensors a lazy read left in the model file are loaded for it.
  return encodeModelToBytes(withLazyLoaded(model));
}

/** quantizesActivations of the model, a file skimmed (its tensor payloads left on disk); false for one that does not decode (onnxruntime says why). */
function activationsQuantized(model: ModelProto | Uint8Array | string): boolean {
  try {
    return quantizesActivations(typeof model === 'string' ? readModelLazy(model) : model instanceof Uint8Array ? decodeModel(model) : model);
  } catch {
    return false;
  }
}

function listFailures(failures: ProbeResult['failures']): string {
  return failures.map((f) => `${f.provider}: ${f.reason}`).join('; ');
}

/**
 * Opens an inference session on the requested device. Errors are CompressError('runtime') with ORT's
 * message; a model ORT refuses on the CPU is reported as such.
 */
export async function openSession(model: ModelProto | Uint8Array | string, opts: SessionOptions = {}): Promise<OpenedSession> {
  const device = opts.device ?? 'cpu';
  const source = modelSource(model);
  const base = baseOptions(opts);
  const warnings: string[] = [];
  const where = typeof source === 'string' ? { file: source } : {};

  if (device === 'gpu' || device === 'auto') {
    const probed = await probeGpu();
    const failures = [...probed.failures];
    if (probed.provider) {
      try {
        const session = await create(source, { ...base, executionProviders: [probed.provider] });
        return { session, device: probed.provider, warnings };
      } catch (e) {
        failures.push({ provider: probed.provider, reason: trimOrtMessage(e) });
      }
    }
    if (device === 'gpu') {
      throw new CompressError('runtime', `no GPU execution provider could run the model (tried ${failures.map((f) => f.provider).join(', ')}): ${listFailures(failures)}`, where);
    }
    // auto: a machine without a GPU provider is the normal case, not worth a word; a provider that
    // works but cannot run this model is, once per process.
    if (probed.provider) once(`fallback:${probed.provider}`, `the ${probed.provider} execution provider cannot run the model, running on the CPU (${listFailures(failures)})`, warnings);
  }
  try {
    // A model with quantized activations, on a CPU whose 8-bit kernels saturate: its QDQ groups run
    // unfused, as exact integer kernels compute them (integer-kernels.ts).
    const cpu = integerKernelsSaturate() && (opts.quantizedActivations ?? activationsQuantized(model)) ? baseOptions(opts, true) : base;
    const session = await create(source, { ...cpu, executionProviders: ['cpu'] });
    return { session, device: 'cpu', warnings };
  } catch (e) {
    throw new CompressError('runtime', `onnxruntime cannot load the model: ${trimOrtMessage(e)}`, where, { cause: e });
  }
}

/** The onnxruntime-node version sessions run on (e.g. "1.30.0"). */
export function runtimeVersion(): string {
  return ort.env.versions?.node ?? 'unknown';
}

/**
 * session.run with ORT's failures turned into CompressError('runtime'). Feeds may be plain tensors
 * (type, dims, data: a synthetic verification input, built without loading onnxruntime): they are
 * wrapped here.
 */
export async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  fetches?: readonly string[],
): Promise<Record<string, ort.Tensor>> {
  if (Object.values(feeds).some((t) => !(t instanceof ort.Tensor))) {
    feeds = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t instanceof ort.Tensor ? t : new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.dims)]));
  }
  try {
    return (fetches ? await session.run(feeds, fetches) : await session.run(feeds)) as Record<string, ort.Tensor>;
  } catch (e) {
    const shapes = Object.entries(feeds)
      .map(([k, t]) => `${k}: ${t.type} [${t.dims.join(', ')}]`)
      .join(', ');
    throw new CompressError('runtime', `onnxruntime failed to run the model on inputs {${shapes}}: ${trimOrtMessage(e)}`, {}, { cause: e });
  }
}

/** Input specs of an open session (from ORT's metadata), for models given as bytes or paths. */
export function sessionInputSpecs(session: ort.InferenceSession): InputSpec[] {
  return session.inputMetadata.map((m) =>
    m.isTensor ? { name: m.name, type: m.type, dims: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d || '?'))) } : { name: m.name, type: 'unknown', dims: [] },
  );
}
