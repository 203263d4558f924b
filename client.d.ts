/**
 * Types for the imports unplugin-onnx-compress answers. Add to tsconfig.json:
 *   "compilerOptions": { "types": ["unplugin-onnx-compress/client"] }
 * or `/// <reference types="unplugin-onnx-compress/client" />` in a .d.ts file.
 *
 *   import url from './m.onnx?compress'              string: URL of the compressed model
 *   import model from './m.onnx?compress&meta'       ModelSummary: url, bytes, precision, fidelity, budget (< 1 kB)
 *   import full from './m.onnx?compress&manifest'    { url, manifest }: the whole manifest (tens of kB)
 *   import models, { pickVariant } from 'virtual:onnx-compress'
 *                                                    { [build id]: ModelSummary }, and a device-aware picker
 *
 * TypeScript allows one `*` per module pattern, so `*.onnx?compress=*` cannot be declared. The common
 * variant names below are; for another variant name, add two lines to your own .d.ts:
 *   declare module '*.onnx?compress=tiny' { const url: string; export default url; }
 *   declare module '*.onnx?compress=tiny&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
 */

declare module '*.onnx?compress' {
  /** URL of the compressed model in the built app (or on the dev server). */
  const url: string;
  export default url;
}

declare module '*.onnx?compress&meta' {
  /** URL of the compressed model, its size, precision, headline fidelity and budget status. */
  const model: import('unplugin-onnx-compress').ModelSummary & { url: string };
  export default model;
}

declare module '*.onnx?compress&manifest' {
  const model: {
    /** URL of the compressed model in the built app (or on the dev server). */
    url: string;
    /** What was done to the model and what it cost: sizes before/after, accuracy, steps, per-layer tables. */
    manifest: import('unplugin-onnx-compress').Manifest;
  };
  export default model;
}

declare module 'virtual:onnx-compress' {
  type Summary = import('unplugin-onnx-compress').ModelSummary & { url: string };
  /** Every build of every recipe, by build id (`<model>` or `<model>.<variant>`). */
  const models: Record<string, Summary>;
  export default models;

  /** What the browser offers onnxruntime-web. */
  export interface DeviceFeatures {
    webgpu: boolean;
    /** The WebGPU adapter has the `shader-f16` feature (fp16 arithmetic in shaders). */
    shaderF16: boolean;
    wasmSimd: boolean;
    /** SharedArrayBuffer and cross-origin isolation: onnxruntime-web can use wasm threads. */
    wasmThreads: boolean;
  }
  export type DeviceTier = 'webgpu-f16' | 'webgpu' | 'wasm';
  export interface PickOptions {
    /** Precisions ('q4f16', 'int4', 'int8', 'float16', …) or variant names, best first, per tier. */
    order?: Partial<Record<DeviceTier, string[]>>;
    /** Skip detection (tests, or a choice the app made already). */
    device?: DeviceFeatures;
  }
  export type PickedModel = Summary & {
    /** Pass to `InferenceSession.create(url, { executionProviders: [executionProvider] })`. */
    executionProvider: 'webgpu' | 'wasm';
    tier: DeviceTier;
    device: DeviceFeatures;
  };
  /**
   * The build of model `name` (its main build or a variant) that fits this browser best: WebGPU with
   * shader-f16 → q4f16 / fp16, WebGPU → 4-bit, wasm → 8-bit, by default (the plugin's `variantOrder`
   * option, the recipe's `pick` for the model and `order` here change it, each over the one before).
   * Rejects when no model `name` was built.
   */
  export function pickVariant(name: string, options?: PickOptions): Promise<PickedModel>;
  export function detectDevice(): Promise<DeviceFeatures>;
}

// Common variant names (transformers.js's among them): `?compress=<variant>` and `?compress=<variant>&meta`.
declare module '*.onnx?compress=q4' { const url: string; export default url; }
declare module '*.onnx?compress=q4&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=q4f16' { const url: string; export default url; }
declare module '*.onnx?compress=q4f16&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=q8' { const url: string; export default url; }
declare module '*.onnx?compress=q8&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=int4' { const url: string; export default url; }
declare module '*.onnx?compress=int4&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=int8' { const url: string; export default url; }
declare module '*.onnx?compress=int8&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=uint8' { const url: string; export default url; }
declare module '*.onnx?compress=uint8&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=fp16' { const url: string; export default url; }
declare module '*.onnx?compress=fp16&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=float16' { const url: string; export default url; }
declare module '*.onnx?compress=float16&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=bnb4' { const url: string; export default url; }
declare module '*.onnx?compress=bnb4&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=quantized' { const url: string; export default url; }
declare module '*.onnx?compress=quantized&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=pruned' { const url: string; export default url; }
declare module '*.onnx?compress=pruned&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
declare module '*.onnx?compress=small' { const url: string; export default url; }
declare module '*.onnx?compress=small&meta' { const model: import('unplugin-onnx-compress').ModelSummary & { url: string }; export default model; }
