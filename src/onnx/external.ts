/**
 * External data (ONNX's answer to protobuf's 2 GiB limit): a tensor with data_location = EXTERNAL keeps
 * its bytes in a side file named by external_data {location, offset, length}.
 *
 * `location` comes from the file, so it is untrusted: absolute paths and `..` segments are refused
 * (CVE-2024-27318 / CVE-2022-25882 were exactly this), as are ranges beyond the side file's end.
 */
import { closeSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { isAbsolute, join } from 'node:path';
import { CompressError } from '../errors.js';
import { cloneModel } from './edit.js';
import { openRegularFile, readFullAt, realPath, resolveInside } from './paths.js';
import type { ModelProto, StringStringEntryProto, TensorProto } from './types.js';
import { forEachTensor } from './walk.js';

export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

/** Offsets of tensors in a data file we write are multiples of this (mmap-friendly, like ONNX's writer). */
export const EXTERNAL_ALIGNMENT = 4096;

export interface ExternalRef {
  location: string;
  offset: number;
  length?: number;
}

export function externalRef(t: TensorProto, modelFile?: string): ExternalRef {
  const get = (k: string) => t.externalData.find((e) => e.key === k)?.value;
  const location = get('location');
  const where = { file: modelFile };
  if (!location) throw new CompressError('model', `tensor "${t.name ?? ''}" is external but has no location`, where);
  const offset = Number(get('offset') ?? 0);
  const lengthText = get('length');
  const length = lengthText === undefined ? undefined : Number(lengthText);
  if (!Number.isSafeInteger(offset) || offset < 0 || (length !== undefined && (!Number.isSafeInteger(length) || length < 0))) {
    throw new CompressError('model', `tensor "${t.name ?? ''}" has an invalid external offset/length (${get('offset')}/${lengthText})`, where);
  }
  return { location, offset, length };
}

/** Refuses locations that could read outside the model's folder. */
export function checkLocation(location: string, modelFile?: string): void {
  const parts = location.split(/[\\/]/);
  if (isAbsolute(location) || /^[a-zA-Z]:/.test(location) || parts.includes('..') || location.includes('\0')) {
    throw new CompressError('model', `external data location "${location}" points outside the model's folder; only relative paths below it are allowed`, { file: modelFile });
  }
}

/**
 * The real path of an external data file: `location` passes checkLocation and, symlinks resolved, stays
 * inside the model's folder (a `weights.bin` that is a symlink to a secrets file is refused).
 */
export function externalDataFile(dir: string, location: string, modelFile?: string, allowedDirs: readonly string[] = []): string {
  checkLocation(location, modelFile);
  // Also allowed: the folder the model file really lives in (a model stored as a symlink into a blob store,
  // like the Hugging Face cache, keeps its data next to its real file), and folders the recipe names.
  const allowed: string[] = [];
  for (const d of allowedDirs) allowed.push(realPath(d, 'io', 'externalDataDirs folder cannot be opened'));
  if (modelFile) {
    try {
      allowed.push(path.dirname(realpathSync.native(modelFile)));
    } catch {
      // an unreadable model fails where it is read
    }
  }
  return resolveInside(dir, location, { file: modelFile, describe: `external data location "${location}"`, allowed });
}

/**
 * Replaces each external tensor's reference with its bytes in rawData (in place). `preloaded` maps a
 * data file's path (dir + location) to its bytes already in memory: tensors then become views into
 * them instead of fresh reads.
 */
export function loadExternalData(
  model: ModelProto,
  dir: string,
  modelFile?: string,
  preloaded?: ReadonlyMap<string, Uint8Array>,
  allowedDirs: readonly string[] = [],
): void {
  const open = new Map<string, { fd: number; size: number }>();
  const reals = new Map<string, string>();
  try {
    forEachTensor(model, (t) => {
      if (t.dataLocation !== DataLocation.EXTERNAL) return;
      const ref = externalRef(t, modelFile);
      const path = join(dir, ref.location);
      let real = reals.get(ref.location);
      if (real === undefined) reals.set(ref.location, (real = externalDataFile(dir, ref.location, modelFile, allowedDirs)));
      const inMemory = preloaded?.get(path);
      if (inMemory) {
        const length = ref.length ?? inMemory.length - ref.offset;
        if (ref.offset > inMemory.length || ref.offset + length > inMemory.length) {
          throw new CompressError('model', `tensor "${t.name ?? ''}" reads bytes ${ref.offset}..${ref.offset + Math.max(0, length)} of a ${inMemory.length}-byte external data file`, { file: path });
        }
        t.rawData = inMemory.subarray(ref.offset, ref.offset + length);
        t.dataLocation = undefined;
        t.externalData = [];
        return;
      }
      let f = open.get(path);
      if (!f) {
        // Non-blocking open + fstat: a FIFO or a device as external data is refused instead of hanging.
        const { fd, stat } = openRegularFile(real, 'model', `the external data of tensor "${t.name ?? ''}"`);
        f = { fd, size: stat.size };
        open.set(path, f);
      }
      const length = ref.length ?? f.size - ref.offset;
      if (ref.offset > f.size || ref.offset + length > f.size) {
        throw new CompressError('model', `tensor "${t.name ?? ''}" reads bytes ${ref.offset}..${ref.offset + Math.max(0, length)} of a ${f.size}-byte external data file`, { file: path });
      }
      const bytes = Buffer.allocUnsafeSlow(length);
      readFullAt(f.fd, bytes, ref.offset); // within the file: checked above
      t.rawData = bytes;
      t.dataLocation = undefined;
      t.externalData = [];
    });
  } finally {
    for (const f of open.values()) closeSync(f.fd);
  }
}

export interface ExternalDataPlan {
  /** A copy of the model whose large tensors point into the data file (the input is not modified). */
  model: ModelProto;
  fileName: string;
  /** The data file's contents: tensor bytes and zero padding between them. */
  chunks: Uint8Array[];
  byteLength: number;
}

/**
 * Plans moving every tensor of at least `threshold` raw bytes into `fileName`, 4096-aligned. Tensors are
 * shallow-copied (their bytes are not), so the original model stays valid.
 */
export function moveToExternalData(model: ModelProto, fileName: string, threshold: number): ExternalDataPlan {
  checkLocation(fileName);
  const copy = cloneModel(model);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  forEachTensor(copy, (t) => {
    const raw = t.rawData;
    if (!raw || raw.length < threshold) return;
    const pad = (EXTERNAL_ALIGNMENT - (offset % EXTERNAL_ALIGNMENT)) % EXTERNAL_ALIGNMENT;
    if (pad) chunks.push(new Uint8Array(pad));
    offset += pad;
    chunks.push(raw);
    const entries: StringStringEntryProto[] = [
      { key: 'location', value: fileName },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(raw.length) },
    ];
    offset += raw.length;
    t.rawData = undefined;
    t.externalData = entries;
    t.dataLocation = DataLocation.EXTERNAL;
  });
  return { model: copy, fileName, chunks, byteLength: offset };
}
