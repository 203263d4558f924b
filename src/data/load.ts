/**
 * Calibration, training and evaluation data: a recipe's `data` path (or 'random') becomes Samples.
 * The path picks the format (src/data/formats.ts lists the extensions): `.jsonl`/`.ndjson` (jsonl.ts),
 * `.npy`, `.npz` or a folder of `<input>.npy` files (npy.ts), a JS/TS module (module.ts), or `random`
 * (random.ts). Every error is CompressError('data') naming the file, the line (JSONL) or sample number,
 * and the input.
 */
import { statSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { CompressError } from '../errors.js';
import { describeStat } from '../onnx/paths.js';
import { dataExtensions, dataFormatOf, type DataFormat } from './formats.js';
import { readJsonl } from './jsonl.js';
import { readModule } from './module.js';
import { readNpy, readNpyFolder, readNpz } from './npy.js';
import { DEFAULT_RANDOM_SAMPLES, randomSamples } from './random.js';
import type { DataSpec, FormatReader, InputSpec, Sample } from './types.js';

export interface LoadOptions {
  /** The recipe file, to resolve a relative `data` path from its folder. */
  recipeFile?: string;
  /** At most this many samples (in addition to spec.samples; the smaller wins). */
  limit?: number;
  /** Seed for random data (default 0). */
  seed?: number;
  /** Label key in JSONL lines and label array name in .npz / directories (default "label"; "labels" also works). */
  labelKey?: string;
}

/** A reader for every format: a format added to formats.ts without one here does not compile. */
const READERS: Record<DataFormat, FormatReader> = {
  jsonl: readJsonl,
  npy: readNpy,
  npz: readNpz,
  module: readModule,
};

export async function loadSamples(spec: DataSpec, inputs: InputSpec[], opts: LoadOptions = {}): Promise<Sample[]> {
  const limits = [spec.samples, opts.limit].filter((v): v is number => typeof v === 'number' && v >= 0);
  const limit = limits.length ? Math.min(...limits) : Infinity;
  if (spec.data === 'random') {
    const samples = randomSamples(inputs, limit === Infinity ? DEFAULT_RANDOM_SAMPLES : limit, opts.seed ?? 0, spec.shapes ?? {});
    // A carried input (recurrent state) starts a sequence at zero, as apps reset it, not at noise.
    for (const input of Object.values(spec.carry ?? {})) {
      for (const s of samples) {
        const d = s.feeds[input]?.data;
        if (d instanceof BigInt64Array || d instanceof BigUint64Array) d.fill(0n);
        else if (ArrayBuffer.isView(d)) (d as Float32Array).fill(0);
      }
    }
    return samples;
  }
  const file = isAbsolute(spec.data) ? spec.data : resolve(opts.recipeFile ? dirname(opts.recipeFile) : process.cwd(), spec.data);
  let isDir: boolean;
  try {
    const st = statSync(file);
    isDir = st.isDirectory();
    // A FIFO or a device would block the read forever.
    if (!isDir && !st.isFile()) throw new CompressError('data', `the data path is not a regular file or a folder (found ${describeStat(st)})`, { file });
  } catch (e) {
    if (e instanceof CompressError) throw e;
    throw new CompressError('io', `cannot read data: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  }
  const read = { limit, labelKey: opts.labelKey ?? 'label' };
  if (isDir) return readNpyFolder(file, inputs, read);
  const ext = extname(file).toLowerCase();
  const format = dataFormatOf(ext);
  if (!format) {
    throw new CompressError(
      'data',
      `unsupported data format "${ext || '(no extension)'}": use a ${dataExtensions.join(', ')} file, a folder of <input>.npy files, or 'random'`,
      { file },
    );
  }
  return READERS[format](file, inputs, read);
}
