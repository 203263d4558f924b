/**
 * Reading and writing .onnx files: whole-file read (tensor bytes stay views into it), streamed atomic
 * write (temp file + rename, chunks written with writev so tensors are never joined in memory), and
 * external data on both sides.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync, writevSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CompressError } from '../errors.js';
import { decodeModelFile, encodeModel, MAX_MESSAGE_BYTES, type Encoded } from './codec.js';
import { loadExternalData, moveToExternalData, type ExternalDataPlan } from './external.js';
import type { ModelProto } from './types.js';

export interface ReadOptions {
  /** Load tensors stored in side files into memory (default true). */
  externalData?: boolean;
}

/** Reads a model file. Tensor bytes are views into the returned file buffer. */
export function readModel(file: string, opts: ReadOptions = {}): ModelProto {
  const bytes = readFileBytes(file);
  const model = decodeModelFile(bytes, file);
  if (opts.externalData !== false) loadExternalData(model, dirname(file), file);
  return model;
}

/** fs.readFileSync with the errors users hit turned into CompressErrors. */
export function readFileBytes(file: string): Buffer {
  const fd = openForReading(file);
  try {
    const size = fstatSync(fd).size;
    if (size > MAX_MESSAGE_BYTES) {
      throw new CompressError('model', `file is ${size} bytes; an ONNX protobuf cannot exceed 2 GiB (larger models keep their weights in external data)`, { file });
    }
    const buf = Buffer.allocUnsafeSlow(size);
    let at = 0;
    while (at < size) {
      const n = readSync(fd, buf, at, size - at, at);
      if (n === 0) break;
      at += n;
    }
    return at === size ? buf : buf.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

/** openSync(file, 'r'), its failure as a CompressError('io') naming the file and the reason. */
export function openForReading(file: string): number {
  try {
    return openSync(file, 'r');
  } catch (e) {
    throw new CompressError('io', `cannot open: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
}

export interface WriteOptions {
  /**
   * Move tensors to an external data file: `true` names it `<file>.data`, a string names it (a plain
   * file name, written next to the model). Default: only when the model would exceed ~1.5 GiB.
   */
  externalData?: boolean | string;
  /** Tensors smaller than this stay inline when writing external data (bytes, default 1024). */
  externalThreshold?: number;
  /** Force every tensor inline even if the model was read with external data. */
  inline?: boolean;
}

/** Above this an output switches to external data on its own, leaving room below protobuf's 2 GiB. */
export const AUTO_EXTERNAL_BYTES = 1.5 * 2 ** 30;

export interface WriteResult {
  file: string;
  bytes: number;
  externalDataFile?: string;
  externalDataBytes?: number;
}

/** Writes a model atomically; returns the sizes written. Does not modify `model`. */
export function writeModel(model: ModelProto, file: string, opts: WriteOptions = {}): WriteResult {
  let encoded = encodeModel(model);
  let plan: ExternalDataPlan | undefined;
  const wantExternal = opts.inline ? false : (opts.externalData ?? encoded.byteLength > AUTO_EXTERNAL_BYTES);
  if (wantExternal) {
    const dataName = typeof wantExternal === 'string' ? wantExternal : `${basename(file)}.data`;
    plan = moveToExternalData(model, dataName, opts.externalThreshold ?? 1024);
    encoded = encodeModel(plan.model);
  }
  if (encoded.byteLength > MAX_MESSAGE_BYTES) {
    throw new CompressError('model', `the encoded model is ${encoded.byteLength} bytes, over protobuf's 2 GiB limit; write it with external data`, { file });
  }
  const result: WriteResult = { file, bytes: encoded.byteLength };
  if (plan) {
    const dataFile = join(dirname(file), plan.fileName);
    writeChunksAtomic(dataFile, { chunks: plan.chunks, byteLength: plan.byteLength });
    result.externalDataFile = dataFile;
    result.externalDataBytes = plan.byteLength;
  }
  writeChunksAtomic(file, encoded);
  return result;
}

/**
 * Writes chunks to `file` through a temp file in the same folder, then renames it into place, so a
 * reader (or a killed build) never sees a half-written file.
 */
export function writeChunksAtomic(file: string, encoded: Encoded): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    const { chunks } = encoded;
    // writev takes at most IOV_MAX (1024) buffers at once on Linux.
    for (let i = 0; i < chunks.length; i += 1024) {
      const batch = chunks.slice(i, i + 1024);
      let want = 0;
      for (const c of batch) want += c.length;
      let wrote = writevSync(fd, batch);
      if (wrote < want) {
        // Short write: finish the rest one buffer at a time.
        for (const c of batch) {
          if (wrote >= c.length) {
            wrote -= c.length;
            continue;
          }
          writevSync(fd, [c.subarray(wrote)]);
          wrote = 0;
        }
      }
    }
    if (process.env.ONNX_COMPRESS_FSYNC === '1') fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, file);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    if (e instanceof CompressError) throw e;
    throw new CompressError('io', `cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
}
