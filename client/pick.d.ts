// Types of pick.js: the same types apps see through client.d.ts (module 'virtual:onnx-compress').
/// <reference path="../client.d.ts" />
import type { DeviceFeatures, DeviceTier, PickOptions, PickedModel } from 'virtual:onnx-compress';

export type { DeviceFeatures, DeviceTier, PickOptions, PickedModel };
export const DEFAULT_ORDER: Record<DeviceTier, string[]>;
export function detectDevice(): Promise<DeviceFeatures>;
export function createPicker(
  models: Record<string, import('unplugin-onnx-compress').ModelSummary & { url: string }>,
  defaults?: { order?: PickOptions['order']; models?: Record<string, PickOptions['order']> },
): (name: string, options?: PickOptions) => Promise<PickedModel>;
