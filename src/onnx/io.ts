/**
 * Reading and writing .onnx files: whole-file read (tensor bytes stay views into it), streamed atomic
 * write (temp file + rename, chunks written with writev so tensors are never joined in memory), and
 * external data on both sides.
 */
import { closeSync, fstatSync, fsyncSync, mkdtempSync, openSync, renameSync, rmSync, writevSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import { CompressError } from '../errors.js';
import { decodeModelFile, encodeModel, MAX_MESSAGE_BYTES, type Encoded } from './codec.js';
import { loadExternalData, moveToExternalData, type ExternalDataPlan } from './external.js';
import { openRegularFile, readFullAt } from './paths.js';
import type { ModelProto } from './types.js';

let tempDir: string | undefined;

/** This process's folder under os.tmpdir() for files only it reads (made on first use, removed at exit). */
export function processTempDir(): string {
  if (!tempDir) {
    tempDir = mkdtempSync(join(os.tmpdir(), 'onnx-compress-'));
    const dir = tempDir;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return tempDir;
}

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
    const at = readFullAt(fd, buf, 0);
    return at === size ? buf : buf.subarray(0, at);
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens a regular file for reading; a missing file, a symlink loop, a folder, a FIFO or a device is a
 * CompressError naming the file (a FIFO is opened without blocking, so it cannot hang the build).
 */
export function openForReading(file: string): number {
  return openRegularFile(file, 'io').fd;
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
 * Writes chunks to `file` through a temp file (in `tmpDir`, default the file's folder, hidden), then
 * renames it into place, so a reader (or a killed build) never sees a half-written file.
 */
export function writeChunksAtomic(file: string, encoded: Encoded, tmpDir?: string): void {
  const tmp = writeChunksToTemp(file, encoded, tmpDir);
  try {
    renameSync(tmp, file);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new CompressError('io', `cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
}

/**
 * Name of a temp file for `file`: `[.]<name>.<pid>.<random>.tmp`. The pid lets a later build tell a
 * killed writer's leftovers from a running one's (src/pipeline/temps.ts removes them).
 */
export function tempName(file: string, tmpDir?: string): string {
  const unique = `${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  return tmpDir ? join(tmpDir, `${basename(file)}.${unique}`) : join(dirname(file), `.${basename(file)}.${unique}`);
}

/** Writes chunks to a new temp file for `file` and returns its path (nothing is left behind on failure). */
export function writeChunksToTemp(file: string, encoded: Encoded, tmpDir?: string): string {
  const tmp = tempName(file, tmpDir);
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
    return tmp;
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    if (e instanceof CompressError) throw e;
    throw new CompressError('io', `cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
}
