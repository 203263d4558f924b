/**
 * The sample contract. Every data format (JSONL, .npy/.npz, JS/TS modules, random) adapts to it; the
 * algorithms that use data (calibration, pruning statistics, distillation, evaluation) only iterate
 * over Samples and never see a format — the role ONNX Runtime's CalibrationDataReader plays, except
 * that a reader returns all its samples at once, because the algorithms make several passes (batches,
 * a held-out split, a teacher pass then a training pass).
 */
import type { Tensor } from 'onnxruntime-node';

/** The feeds of one model call, with exact shapes, and an optional label. */
export interface Sample {
  feeds: Record<string, Tensor>;
  label?: number | number[] | string;
}

/** What a model expects of one input (from the graph's input ValueInfoProto). */
export interface InputSpec {
  name: string;
  /** onnxruntime's type name: 'float32', 'int64', 'float16', … */
  type: string;
  /** Numbers for fixed dims, strings for symbolic ones (or '?' when unnamed). */
  dims: (number | string)[];
}

/** Where samples come from, as a recipe's `calibration`, `evaluate` or `distill.data` block gives it. */
export interface DataSpec {
  /** Absolute path, or 'random'. */
  data: string;
  samples?: number;
  /** Sizes for symbolic input dimensions (used with random data). */
  shapes?: Record<string, number>;
  /**
   * Streaming / stateful models: output name → input name. Samples are one sequence, run in order; each
   * sample's carried inputs are the previous run's outputs (the first sample's own values start it).
   */
  carry?: Record<string, string>;
}

/** What a format's reader is told besides the file and the model's inputs. */
export interface ReadOptions {
  /** At most this many samples (Infinity for all). */
  limit: number;
  /** Label key in JSONL lines and objects, label array name in .npz files and folders. */
  labelKey: string;
}

/**
 * One data format: the file's samples, each checked against the model's inputs (names, types, shapes).
 * Errors are CompressError('data') naming the file and the line or sample.
 */
export type FormatReader = (file: string, inputs: InputSpec[], opts: ReadOptions) => Sample[] | Promise<Sample[]>;
