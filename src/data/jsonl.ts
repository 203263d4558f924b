/**
 * `.jsonl` / `.ndjson`: one sample per line, `{"inputs": {name: value}, "label": …}` (the label key is
 * `labelKey`, default "label"). A value is a nested array with the exact shape of one call (batch 1:
 * `"input_ids": [[1, 12, 71]]`) or `{"dtype", "dims", "data"}` with flat or nested data. Integer
 * inputs are JSON numbers (int64 beyond 2^53 cannot be written exactly in JSON). Blank lines are skipped.
 * Errors name the line, and the column of a JSON syntax error.
 */
import { closeSync, readFileSync } from 'node:fs';
import { openRegularFile } from '../onnx/paths.js';
import { CompressError } from '../errors.js';
import { suggest } from '../suggest.js';
import type { InputSpec, ReadOptions, Sample } from './types.js';
import { fail, pickLabel, sampleFromObject, type Where } from './values.js';

export function readJsonl(file: string, inputs: InputSpec[], { limit, labelKey }: ReadOptions): Sample[] {
  let text: string;
  const { fd } = openRegularFile(file, 'data', 'a data file'); // without blocking: a FIFO is an error, not a hang
  try {
    text = readFileSync(fd, 'utf8');
  } catch (e) {
    throw new CompressError('io', `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });
  } finally {
    closeSync(fd);
  }
  const lines = text.split('\n');
  const samples: Sample[] = [];
  for (let i = 0; i < lines.length && samples.length < limit; i++) {
    const line = lines[i].endsWith('\r') ? lines[i].slice(0, -1) : lines[i];
    if (line.trim() === '') continue;
    const w: Where = { file, line: i + 1, sample: samples.length + 1 };
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      const err = locateJsonError(line);
      throw new CompressError('data', `sample ${w.sample}: invalid JSON: ${err.message}`, { file, line: i + 1, column: err.index + 1 });
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) fail(w, `a line must be a JSON object {"inputs": {…}, "${labelKey}": …}`);
    const o = obj as Record<string, unknown>;
    if (!('inputs' in o)) {
      const keys = Object.keys(o);
      const s = suggest('inputs', keys);
      fail(w, `no "inputs" object${s ? ` (found "${s}")` : ''}: a line is {"inputs": {${inputs.map((x) => `"${x.name}": …`).join(', ')}}, "${labelKey}": …}`);
    }
    samples.push({ feeds: sampleFromObject(o.inputs, inputs, w), label: pickLabel(o, labelKey, w) });
  }
  return samples;
}

/** Where JSON.parse failed (Node 20's messages carry no position): a small validating scanner. */
export function locateJsonError(s: string): { index: number; message: string } {
  let i = 0;
  class Stop {
    constructor(readonly index: number, readonly message: string) {}
  }
  const ch = () => (i < s.length ? `'${s[i]}'` : 'end of line');
  const ws = () => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const value = (): void => {
    ws();
    const c = s[i];
    if (c === '{') {
      i++;
      ws();
      if (s[i] === '}') return void i++;
      for (;;) {
        ws();
        if (s[i] !== '"') throw new Stop(i, `expected a "key" but found ${ch()}`);
        string();
        ws();
        if (s[i] !== ':') throw new Stop(i, `expected ':' but found ${ch()}`);
        i++;
        value();
        ws();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === '}') return void i++;
        throw new Stop(i, `expected ',' or '}' but found ${ch()}`);
      }
    }
    if (c === '[') {
      i++;
      ws();
      if (s[i] === ']') return void i++;
      for (;;) {
        value();
        ws();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === ']') return void i++;
        throw new Stop(i, `expected ',' or ']' but found ${ch()}`);
      }
    }
    if (c === '"') return string();
    if (c === '-' || (c >= '0' && c <= '9')) {
      const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(s.slice(i));
      if (!m) throw new Stop(i, `invalid number`);
      i += m[0].length;
      return;
    }
    for (const lit of ['true', 'false', 'null']) {
      if (s.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    throw new Stop(i, `expected a value but found ${ch()}`);
  };
  const string = () => {
    const start = i;
    i++;
    while (i < s.length && s[i] !== '"') {
      if (s[i] === '\\') i++;
      else if (s.charCodeAt(i) < 0x20) throw new Stop(i, 'control character in a string');
      i++;
    }
    if (i >= s.length) throw new Stop(start, 'unterminated string');
    i++;
  };
  try {
    value();
    ws();
    if (i < s.length) throw new Stop(i, `unexpected ${ch()} after the end of the value`);
    return { index: 0, message: 'unparsable JSON' };
  } catch (e) {
    if (e instanceof Stop) return { index: Math.min(e.index, s.length), message: e.message };
    if (e instanceof RangeError) return { index: i, message: 'nested too deeply to parse' }; // the scanner recurses
    throw e;
  }
}
