/** What compressing one build gives: the output bytes and their manifest (compress.ts makes it, present.ts and report.ts read it). */
import type { Build } from '../recipe/types.js';
import type { Manifest } from './manifest.js';

export interface CompressResult {
  build: Build;
  /** The compressed .onnx. */
  bytes: Uint8Array;
  manifest: Manifest;
  cached: boolean;
  /** Cache key (hex). */
  key: string;
}
