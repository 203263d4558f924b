/** Model sizes for reports: protobuf bytes, and brotli bytes (what a server sends) for models that are not huge. */
import { brotliCompressSync, constants } from 'node:zlib';
import { encodeModel, joinChunks } from '../../onnx/codec.js';
import type { ModelProto } from '../../onnx/types.js';

/**
 * Brotli is measured only up to this size: quality 6 runs at ~25 MB/s on the main thread, twice per
 * step (the manifest's sizes cover every model, estimated above this size).
 */
export const BROTLI_LIMIT = 8 * 2 ** 20;

export function modelSize(model: ModelProto, brotli = true): { bytes: number; brotli?: number } {
  const encoded = encodeModel(model);
  if (!brotli || encoded.byteLength > BROTLI_LIMIT) return { bytes: encoded.byteLength };
  const buf = joinChunks(encoded);
  const out = brotliCompressSync(buf, { params: { [constants.BROTLI_PARAM_QUALITY]: 6, [constants.BROTLI_PARAM_SIZE_HINT]: buf.length } });
  return { bytes: encoded.byteLength, brotli: out.length };
}
