/**
 * Which GPU execution provider works in this process: probed once on a one-node model and cached, so
 * opening many sessions costs one probe. A CUDA provider whose libraries are not installed next to
 * onnxruntime (the npm package ships without them) and a WebGPU provider without a Vulkan loader are
 * ruled out by file checks instead of a ~0.2–0.4 s failing load; when both are, onnxruntime's native
 * library is not loaded at all (a `device: auto` build on a machine without a GPU loads it only where
 * something runs in this process).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { encodeModelToBytes } from '../onnx/codec.js';
import { DataType } from '../onnx/dtypes.js';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../onnx/graph.js';
import { trimOrtMessage } from './ort-message.js';

export type GpuProvider = 'cuda' | 'webgpu';
const GPU_PROVIDERS: readonly GpuProvider[] = ['cuda', 'webgpu'];

export interface ProbeResult {
  /** The first GPU provider that could open a session, if any. */
  provider?: GpuProvider;
  /** Why each provider tried before it (or all of them) failed. */
  failures: { provider: GpuProvider; reason: string }[];
}

let probe: Promise<ProbeResult> | undefined;

/** A model with one Identity node, to find out whether a provider can open sessions at all. */
function probeModel(): Uint8Array {
  const io = (name: string) => makeValueInfo(name, DataType.FLOAT, [1]);
  return encodeModelToBytes(makeModel(makeGraph('probe', [makeNode('Identity', ['x'], ['y'])], [io('x')], [io('y')])));
}

/** Which GPU provider works in this process (probed once, then cached). */
export function probeGpu(): Promise<ProbeResult> {
  probe ??= (async () => {
    const failures: ProbeResult['failures'] = [];
    let ort: typeof import('onnxruntime-node') | undefined;
    for (const provider of GPU_PROVIDERS) {
      if (provider === 'cuda' && !cudaLibrariesPresent()) {
        failures.push({ provider, reason: 'Failed to load shared library: the CUDA provider libraries are not installed next to onnxruntime-node' });
        continue;
      }
      if (provider === 'webgpu' && !vulkanLoaderPresent()) {
        failures.push({ provider, reason: 'no Vulkan loader (libvulkan.so.1) on this machine; WebGPU needs a Vulkan driver' });
        continue;
      }
      // Loaded for the first provider that passed its file check: none did, none loaded.
      if (!ort) {
        ort = await import('onnxruntime-node');
        // A missing CUDA library is logged by ORT's process-wide logger as an error before the session
        // creation throws; we report it ourselves. This only takes effect when ORT was not initialized
        // yet, and only when nobody changed the default level.
        if (ort.env.logLevel === 'warning') ort.env.logLevel = 'fatal';
      }
      try {
        // Fatal-only logging: the probe's failures are expected and reported by us, not by ORT's logger.
        const s = await ort.InferenceSession.create(probeModel(), { executionProviders: [provider], logSeverityLevel: 4, intraOpNumThreads: 1, interOpNumThreads: 1 });
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
}
