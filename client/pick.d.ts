// Types of pick.js (the apps' view is in ../client.d.ts, module 'virtual:onnx-compress').
import type { ModelSummary } from '../dist/index.js';

export interface DeviceFeatures {
  webgpu: boolean;
  shaderF16: boolean;
  wasmSimd: boolean;
  wasmThreads: boolean;
}
export type DeviceTier = 'webgpu-f16' | 'webgpu' | 'wasm';
export interface PickOptions {
  order?: Partial<Record<DeviceTier, string[]>>;
  device?: DeviceFeatures;
}
export type Summary = Pick<ModelSummary, 'id' | 'name' | 'variant' | 'precision' | 'target'> & Partial<ModelSummary> & { url: string };
export type PickedModel<S extends Summary = Summary> = S & { executionProvider: 'webgpu' | 'wasm'; tier: DeviceTier; device: DeviceFeatures };

export const DEFAULT_ORDER: Record<DeviceTier, string[]>;
export function detectDevice(): Promise<DeviceFeatures>;
export function createPicker<S extends Summary>(
  models: Record<string, S>,
  defaults?: { order?: PickOptions['order'] },
): (name: string, options?: PickOptions) => Promise<PickedModel<S>>;
