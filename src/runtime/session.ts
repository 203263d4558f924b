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
 * Which GPU provider works is probed once per process on a one-node model and cached, so opening many
 * sessions costs one probe; a CUDA provider whose libraries are not installed next to onnxruntime (the
 * npm package ships without them) is ruled out by a file check instead of a ~0.2–0.4 s failing load.
 * A GPU provider that passed the probe but fails on a real model is an error for `gpu` and falls back to
 * the CPU for `auto` with one warning per process (returned by the first session that hits it).
 *
 * Threads: several sessions on few cores each spin their own pool (9 sessions made small runs 30×
 * slower on 2 cores; docs/facts.md, "Sessions and threads"), so the default is 1 intra-op thread, 1 inter-op thread and no spinning; pass
 * `intraOpThreads` for a session that runs alone.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { CompressError } from '../errors.js';
import { passSessionGate } from './gate.js';
import { encodeModelToBytes } from '../onnx/codec.js';
import { withLazyLoaded } from '../onnx/lazy.js';
import { DataType, dataTypeName } from '../onnx/dtypes.js';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../onnx/graph.js';
import type { ModelProto, TypeProto } from '../onnx/types.js';
import type { InputSpec } from '../data/types.js';
import type { Device as DeviceChoice } from '../device.js';

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
  /** Let idle pool threads spin (onnxruntime's default; off here unless asked: sessions share few cores). */
  spinning?: boolean;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  device: Device;
  warnings: string[];
}

type GpuProvider = 'cuda' | 'webgpu';
const GPU_PROVIDERS: readonly GpuProvider[] = ['cuda', 'webgpu'];

interface ProbeResult {
  /** The first GPU provider that could open a session, if any. */
  provider?: GpuProvider;
  /** Why each provider tried before it (or all of them) failed. */
  failures: { provider: GpuProvider; reason: string }[];
}

let probe: Promise<ProbeResult> | undefined;

/** ORT's error message without source paths, assertion text and trailing noise, at most ~300 chars. */
export function trimOrtMessage(e: unknown): string {
  let m = e instanceof Error ? e.message : String(e);
  const afterCode = /\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*\w+\s*:\s*/.exec(m);
  if (afterCode) m = m.slice(afterCode.index + afterCode[0].length);
  // "/onnxruntime_src/…/webgpu_context.cc:136 <function> <condition> was false. Failed to …"
  const wasFalse = m.lastIndexOf(' was false. ');
  if (wasFalse >= 0) m = m.slice(wasFalse + ' was false. '.length);
  m = m.replace(/(^|\s)\/\S+\.(cc|cpp|h):\d+\s*/g, '$1');
  m = m.replace(/\s+/g, ' ').trim();
  return m.length > 300 ? m.slice(0, 297) + '...' : m;
}

/** A model with one Identity node, to find out whether a provider can open sessions at all. */
function probeModel(): Uint8Array {
  const io = (name: string) => makeValueInfo(name, DataType.FLOAT, [1]);
  return encodeModelToBytes(makeModel(makeGraph('probe', [makeNode('Identity', ['x'], ['y'])], [io('x')], [io('y')])));
}

function baseOptions(opts: SessionOptions): ort.InferenceSession.SessionOptions {
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

/** Which GPU provider works in this process (probed once, then cached). */
export function probeGpu(): Promise<ProbeResult> {
  probe ??= (async () => {
    // A missing CUDA library is logged by ORT's process-wide logger as an error before the session
    // creation throws; we report it ourselves. This only takes effect when ORT was not initialized
    // yet, and only when nobody changed the default level.
    if (ort.env.logLevel === 'warning') ort.env.logLevel = 'fatal';
    const bytes = probeModel();
    const failures: ProbeResult['failures'] = [];
    for (const provider of GPU_PROVIDERS) {
      if (provider === 'cuda' && !cudaLibrariesPresent()) {
        failures.push({ provider, reason: 'Failed to load shared library: the CUDA provider libraries are not installed next to onnxruntime-node' });
        continue;
      }
      if (provider === 'webgpu' && !vulkanLoaderPresent()) {
        failures.push({ provider, reason: 'no Vulkan loader (libvulkan.so.1) on this machine; WebGPU needs a Vulkan driver' });
        continue;
      }
      try {
        // Fatal-only logging: the probe's failures are expected and reported by us, not by ORT's logger.
        const s = await ort.InferenceSession.create(bytes, { executionProviders: [provider], logSeverityLevel: 4, intraOpNumThreads: 1, interOpNumThreads: 1 });
        await s.release();
        return { provider, failures };
      } catch (e) {
        failures.push({ provider, reason: trimOrtMessage(e) });
      }
    }
    return { failures };
  })();
  return probe;
}

/**
 * On Linux, Dawn (ORT's WebGPU) needs libvulkan.so.1; without it Dawn prints a warning of its own to
 * stderr before failing. Looking for the loader first keeps builds quiet and the reason precise.
 */
function vulkanLoaderPresent(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean);
  if (dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')))) return true;
  try {
    return readFileSync('/etc/ld.so.cache').includes('libvulkan.so.1');
  } catch {
    return true; // cannot tell: let ORT try
  }
}

/**
 * ORT loads its CUDA provider from the folder of its own library (libonnxruntime_providers_cuda.so,
 * onnxruntime_providers_cuda.dll); onnxruntime-node's npm package ships without it and its install step
 * downloads it. False only when that folder is found and the library is not in it.
 */
function cudaLibrariesPresent(): boolean {
  try {
    const pkg = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    const dir = join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
    if (!existsSync(dir)) return true;
    return readdirSync(dir).some((f) => /onnxruntime_providers_cuda/.test(f));
  } catch {
    return true; // cannot tell: let ORT try
  }
}

/** Forgets the cached probe and the notices already given (tests). */
export function resetGpuProbe(): void {
  probe = undefined;
  given.clear();
}

/** Notices already returned in this process: each is given once, not once per session or model. */
const given = new Set<string>();
function once(key: string, message: string, into: string[]): void {
  if (given.has(key)) return;
  given.add(key);
  into.push(message);
}

function modelSource(model: ModelProto | Uint8Array | string): Uint8Array | string {
  if (typeof model === 'string' || model instanceof Uint8Array) return model;
  // onnxruntime reads bytes: tensors a lazy read left in the model file are loaded for it.
  return encodeModelToBytes(withLazyLoaded(model));
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
    const session = await create(source, { ...base, executionProviders: ['cpu'] });
    return { session, device: 'cpu', warnings };
  } catch (e) {
    throw new CompressError('runtime', `onnxruntime cannot load the model: ${trimOrtMessage(e)}`, where, { cause: e });
  }
}

/** The onnxruntime-node version sessions run on (e.g. "1.30.0"). */
export function runtimeVersion(): string {
  return ort.env.versions?.node ?? 'unknown';
}

/** session.run with ORT's failures turned into CompressError('runtime'). */
export async function runSession(
  session: ort.InferenceSession,
  feeds: Record<string, ort.Tensor>,
  fetches?: readonly string[],
): Promise<Record<string, ort.Tensor>> {
  try {
    return (fetches ? await session.run(feeds, fetches) : await session.run(feeds)) as Record<string, ort.Tensor>;
  } catch (e) {
    const shapes = Object.entries(feeds)
      .map(([k, t]) => `${k}: ${t.type} [${t.dims.join(', ')}]`)
      .join(', ');
    throw new CompressError('runtime', `onnxruntime failed to run the model on inputs {${shapes}}: ${trimOrtMessage(e)}`, {}, { cause: e });
  }
}

function typeDims(type: TypeProto | undefined): (number | string)[] {
  const dims = type?.tensorType?.shape?.dim ?? [];
  return dims.map((d) => (d.dimValue !== undefined ? Number(d.dimValue) : d.dimParam ? d.dimParam : '?'));
}

function typeName(type: TypeProto | undefined): string {
  const elem = type?.tensorType?.elemType;
  if (elem === undefined) return type?.sequenceType ? 'sequence' : type?.mapType ? 'map' : 'unknown';
  try {
    return dataTypeName(elem);
  } catch {
    return `type${elem}`;
  }
}

/**
 * The model's real inputs (graph inputs that are not initializers): ORT type names and dims (numbers,
 * symbolic names, '?' for unnamed unknown dims). An input without shape information gets `dims: []`.
 */
export function inputSpecs(model: ModelProto): InputSpec[] {
  const g = model.graph;
  if (!g) return [];
  const inits = new Set(g.initializer.map((t) => t.name));
  return g.input.filter((v) => v.name && !inits.has(v.name)).map((v) => ({ name: v.name!, type: typeName(v.type), dims: typeDims(v.type) }));
}

/** The graph's output names, in order. */
export function outputNames(model: ModelProto): string[] {
  return (model.graph?.output ?? []).map((o) => o.name ?? '');
}

/** Output specs (type and dims) like inputSpecs. */
export function outputSpecs(model: ModelProto): InputSpec[] {
  return (model.graph?.output ?? []).map((v) => ({ name: v.name ?? '', type: typeName(v.type), dims: typeDims(v.type) }));
}

/** Input specs of an open session (from ORT's metadata), for models given as bytes or paths. */
export function sessionInputSpecs(session: ort.InferenceSession): InputSpec[] {
  return session.inputMetadata.map((m) =>
    m.isTensor ? { name: m.name, type: m.type, dims: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : String(d || '?'))) } : { name: m.name, type: 'unknown', dims: [] },
  );
}
