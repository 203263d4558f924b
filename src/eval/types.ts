/**
 * Samples: the feeds of one model call with exact shapes, and an optional label. Calibration and
 * evaluation data of every format (JSONL, .npy/.npz, JS modules, random) become these.
 */
import type { Tensor } from 'onnxruntime-node';

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
