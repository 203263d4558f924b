/**
 * CompressErrors as bundler errors: Rollup, Vite (and its overlay) read `id` and `loc` from a thrown
 * error; webpack and esbuild print the message, which already starts with `file:line:column`.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CompressError } from '../errors.js';

export interface BundlerError extends Error {
  id?: string;
  loc?: { file: string; line: number; column: number };
  /** The recipe's lines around `loc`: Vite prints it (terminal and overlay) instead of the importing module's code. */
  frame?: string;
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
  if (line !== undefined) {
    err.loc = { file: abs, line, column: column ?? 1 };
    const frame = codeFrame(abs, line, column ?? 1);
    if (frame) err.frame = frame;
  }
  return err;
}

/** Two lines either side of line:column, numbered, with a caret under the column (as Vite frames code). */
export function codeFrame(file: string, line: number, column: number): string | undefined {
  let text: string;
  try {
    if (statSync(file).size > 1 << 20) return undefined; // a recipe is small; anything else is not worth framing
    text = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.split(/\r?\n/);
  if (line < 1 || line > lines.length) return undefined;
  const first = Math.max(1, line - 2);
  const last = Math.min(lines.length, line + 2);
  const width = String(last).length;
  const out: string[] = [];
  for (let n = first; n <= last; n++) {
    out.push(`${String(n).padStart(width)} | ${lines[n - 1]}`);
    if (n === line) out.push(`${' '.repeat(width)} | ${' '.repeat(Math.max(0, column - 1))}^`);
  }
  return out.join('\n');
}
