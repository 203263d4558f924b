// Picks the build of a model that fits the browser it runs in. Served to the app by the plugin as part
// of `virtual:onnx-compress` (`import { pickVariant } from 'virtual:onnx-compress'`); plain browser
// JavaScript, no imports. Types: client.d.ts.
//
// Tiers, best first: WebGPU with shader-f16, WebGPU, wasm. In each tier the builds are tried in an order
// of precisions (or variant names): fp16 arithmetic only pays where the GPU has f16 shaders; 4-bit
// weights are the WebGPU provider's fast path (MatMulNBits); on wasm 8-bit is the fast, accurate choice.
// A build whose op forms were chosen for WebGPU (`target: webgpu`) is only picked on WebGPU.

/** @type {Record<'webgpu-f16' | 'webgpu' | 'wasm', string[]>} */
export const DEFAULT_ORDER = {
  'webgpu-f16': ['q4f16', 'float16', 'int4', 'uint4', 'int8', 'uint8', 'mixed', 'float32'],
  webgpu: ['int4', 'uint4', 'int8', 'uint8', 'mixed', 'float32'],
  wasm: ['int8', 'uint8', 'int4', 'uint4', 'mixed', 'float32', 'float16', 'q4f16'],
};

// (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt)): validates only where wasm SIMD is on.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

/** What this browser offers onnxruntime-web. Never throws: a failed probe is a missing feature. */
export async function detectDevice() {
  const device = { webgpu: false, shaderF16: false, wasmSimd: false, wasmThreads: false };
  try {
    const gpu = globalThis.navigator && globalThis.navigator.gpu;
    const adapter = gpu ? await gpu.requestAdapter() : null;
    if (adapter) {
      device.webgpu = true;
      device.shaderF16 = adapter.features.has('shader-f16');
    }
  } catch {
    // no adapter: wasm it is
  }
  try {
    device.wasmSimd = WebAssembly.validate(SIMD_PROBE);
  } catch {
    // no WebAssembly at all; onnxruntime-web will say so when it loads
  }
  device.wasmThreads = typeof SharedArrayBuffer !== 'undefined' && globalThis.crossOriginIsolated === true;
  return device;
}

function matches(build, want) {
  return build.variant === want || build.precision === want || (want === 'main' && build.variant === undefined);
}

/**
 * `pickVariant(name, { order, device })` over the builds of `models` (build id → summary). Orders, each
 * over the one before, per tier: the default, `defaults.order` (the plugin's variantOrder),
 * `defaults.models[name]` (the recipe's `pick` for that model), the call's `order`.
 */
export function createPicker(models, defaults = {}) {
  return async function pickVariant(name, options = {}) {
    const builds = Object.values(models).filter((b) => b.name === name);
    if (builds.length === 0) {
      const names = [...new Set(Object.values(models).map((b) => b.name))].join(', ');
      throw new Error(`pickVariant: no model "${name}" was built (models: ${names || 'none'})`);
    }
    const device = options.device || (await detectDevice());
    const order = { ...DEFAULT_ORDER, ...defaults.order, ...(defaults.models && defaults.models[name]), ...options.order };
    const tiers = device.webgpu ? (device.shaderF16 ? ['webgpu-f16', 'webgpu', 'wasm'] : ['webgpu', 'wasm']) : ['wasm'];
    for (const tier of tiers) {
      const executionProvider = tier === 'wasm' ? 'wasm' : 'webgpu';
      for (const want of order[tier] || []) {
        const hit = builds.find((b) => matches(b, want) && (executionProvider === 'webgpu' || b.target !== 'webgpu'));
        if (hit) return { ...hit, executionProvider, tier, device };
      }
    }
    // Nothing in the order fits: the main build (else any) on wasm, which runs every form.
    const fallback = builds.find((b) => b.variant === undefined && b.target !== 'webgpu') || builds.find((b) => b.target !== 'webgpu') || builds[0];
    return { ...fallback, executionProvider: 'wasm', tier: 'wasm', device };
  };
}
