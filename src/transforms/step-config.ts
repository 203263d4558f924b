/**
 * What a step declares about its recipe block, beside the step: the block's keys and defaults, how a
 * merged block becomes the normalized parameters the step runs with, which keys name files, and the
 * checks that need the recipe position. The recipe loader, the cache key, the manifest and the schema
 * test read these; the step itself trusts the parameters it is given.
 *
 * A config module imports nothing at run time: loading the recipe must not load a transform.
 */

/** Where a problem is reported: at the key, or at its value (the key when the value is empty). */
export type ProblemAt = 'key' | 'value';

/**
 * Reports a recipe problem at `keys` (a path from the build's top, e.g. ['quantize', 'method']); the
 * loader turns it into `file:line:col: models.x.quantize.method: message`, pointing at whichever of
 * defaults / model / variant wrote the key.
 */
export type Problem = (keys: string[], message: string, at?: ProblemAt) => void;

export interface NormalizeContext {
  problem: Problem;
  /** The build's calibration data (absolute path or 'random'), when it has any. */
  calibration?: string;
  /** Its `shapes` (sizes of symbolic dims for random data), when it has them. */
  calibrationShapes?: Record<string, number>;
  /** A model path from the recipe, absolute ('original' stays). */
  modelPath(p: string): string;
  /** A data path from the recipe, absolute ('random' stays). */
  dataPath(p: string): string;
}

/** A value of the block that names a file: a model (.onnx) or data (a data file or folder). */
export type FileKind = 'model' | 'data';

export interface StepConfig<P extends object = object> {
  name: string;
  /** Every key the recipe block may hold, with its fixed default (`undefined`: required, or derived from others). */
  keys: Record<string, unknown>;
  /** Keys the block must set; a block without one is reported and the step left out. */
  required: string[];
  /** Keys whose (normalized) values are paths of files the step reads: they are hashed for the cache key by content. */
  files: Record<string, FileKind>;
  /**
   * A step every build runs unless its recipe says `<name>: false` (with its defaults when the recipe
   * has no block; `<name>: true` is the same as an empty block). Off-by-default steps run only with a block.
   */
  enabledByDefault?: boolean;
  /** Merged recipe block (defaults, model and variant) → the step's parameters, or undefined when it cannot run. */
  normalize(block: Record<string, unknown>, ctx: NormalizeContext): P | undefined;
}

/** A list of strings from the recipe (the schema has checked the form). */
export function stringList(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [];
}
