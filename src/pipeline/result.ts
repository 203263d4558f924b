/** What compressing one build gives: the output bytes and their manifest (compress.ts makes it, present.ts and report.ts read it). */
import type { Build } from '../recipe/types.js';
import type { Manifest } from './manifest.js';

export interface CompressResult {
  build: Build;
  /** The compressed .onnx, read from `file` on each access (keep it if you need it twice). */
  readonly bytes: Uint8Array;
  /** Where the compressed .onnx is: the cache entry, or a temp file of this process when there is no cache. */
  file: string;
  manifest: Manifest;
  cached: boolean;
  /** Cache key (hex). */
  key: string;
}
