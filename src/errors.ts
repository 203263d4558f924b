/**
 * Every error a user can cause is a CompressError: a kind, one human sentence, and where it happened
 * (a file with line:column for recipes, a byte offset for model files, a sample number for data).
 * Callers print `error.message`; the CLI exits 2 for bad input, 1 for budget/compression failures.
 */
export type ErrorKind =
  | 'recipe' // compress.yaml is invalid
  | 'model' // an .onnx file is malformed or unsupported
  | 'data' // calibration / evaluation data is malformed
  | 'io' // a file is missing or unreadable
  | 'runtime' // onnxruntime failed (device, session, run)
  | 'budget' // an accuracy / size budget is violated
  | 'compress'; // a transform could not be applied

export interface ErrorLocation {
  file?: string;
  line?: number;
  column?: number;
  offset?: number;
}

export class CompressError extends Error {
  readonly kind: ErrorKind;
  readonly location: ErrorLocation;
  constructor(kind: ErrorKind, message: string, location: ErrorLocation = {}, options?: { cause?: unknown }) {
    super(formatMessage(message, location), options);
    this.name = 'CompressError';
    this.kind = kind;
    this.location = location;
  }
  /** 2 = the user's input is wrong; 1 = the input is fine but the result failed a check. */
  get exitCode(): number {
    return this.kind === 'budget' || this.kind === 'compress' ? 1 : 2;
  }
}

function formatMessage(message: string, loc: ErrorLocation): string {
  if (!loc.file) return loc.offset !== undefined ? `at byte ${loc.offset}: ${message}` : message;
  let where = loc.file;
  if (loc.line !== undefined) where += `:${loc.line}` + (loc.column !== undefined ? `:${loc.column}` : '');
  if (loc.offset !== undefined) where += ` (byte ${loc.offset})`;
  return `${where}: ${message}`;
}

/**
 * `e` with `file` as its location when it is a CompressError that names no place at all (a transform
 * that found a malformed tensor knows the tensor, not the file); anything else is returned unchanged.
 */
export function locate(e: unknown, file: string): unknown {
  if (!(e instanceof CompressError) || e.location.file !== undefined || e.location.offset !== undefined) return e;
  const located = new CompressError(e.kind, e.message, { file }, { cause: e });
  if (e.stack) located.stack = `${located.name}: ${located.message}\n${e.stack.split('\n').slice(1).join('\n')}`;
  return located;
}
