/**
 * CompressErrors as bundler errors: Rollup, Vite (and its overlay) read `id` and `loc` from a thrown
 * error; webpack and esbuild print the message, which already starts with `file:line:column`.
 */
import path from 'node:path';
import { CompressError } from '../errors.js';

export interface BundlerError extends Error {
  id?: string;
  loc?: { file: string; line: number; column: number };
}

export function bundlerError(e: unknown): BundlerError {
  if (!(e instanceof Error)) return new Error(String(e));
  if (!(e instanceof CompressError) || !e.location.file) return e;
  const { file, line, column } = e.location;
  const abs = path.resolve(file);
  // A copy rather than a `cause` chain: bundlers print causes, and this message would show twice.
  const err: BundlerError = Object.assign(new Error(e.message), { id: abs, kind: e.kind });
  err.name = e.name;
  err.stack = e.stack;
  if (line !== undefined) err.loc = { file: abs, line, column: column ?? 1 };
  return err;
}
