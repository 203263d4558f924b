/**
 * Bounds on what a recipe can ask for (src/limits.ts holds the values). Checked before the expensive
 * parts: the text's size and nesting before YAML parses it (a deeply nested document overflows the
 * parser's stack), the number of builds before schema validation, and per-build counts (samples, runs,
 * distill steps) once builds are normalized, so each error points at the key that asks for too much.
 */
import { limit } from '../limits.js';
import type { Build } from './types.js';

export interface TextProblem {
  line: number;
  col: number;
  message: string;
}

const limitNote = (name: string) => ` (set ONNX_COMPRESS_LIMIT_${name} to change the limit)`;

/**
 * Size, nesting and entries per mapping of recipe text, by a linear scan (the YAML library checks each new
 * key against all earlier ones of its mapping: 20,000 keys took 13–16 s to parse here): flow brackets (outside quotes and comments) and
 * block indentation levels together. Returns the first problem or undefined.
 */
export function recipeTextProblem(text: string): TextProblem | undefined {
  const maxBytes = limit('RECIPE_BYTES');
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) return { line: 1, col: 1, message: `the recipe is ${bytes} bytes, over the limit of ${maxBytes}${limitNote('RECIPE_BYTES')}` };
  const maxDepth = limit('RECIPE_DEPTH');
  const maxEntries = limit('RECIPE_ENTRIES');
  const tooMany = (line: number, col: number): TextProblem => ({
    line,
    col,
    message: `a mapping or list of the recipe has more than ${maxEntries} entries${limitNote('RECIPE_ENTRIES')}`,
  });
  const indents: number[] = [];
  const entries: number[] = []; // lines seen at each block level so far (entries of that mapping or list)
  const flowEntries: number[] = [];
  let flow = 0;
  let line = 1;
  let col = 0;
  let quote: string | undefined;
  let atLineStart = true;
  let indent = 0;
  let comment = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    col++;
    if (c === '\n') {
      line++;
      col = 0;
      atLineStart = true;
      indent = 0;
      comment = false;
      if (quote === "'" || quote === '"') continue; // multi-line quoted scalars go on
      continue;
    }
    if (comment) continue;
    if (quote) {
      if (c === '\\' && quote === '"') i++, col++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (atLineStart) {
      if (c === ' ') {
        indent++;
        continue;
      }
      atLineStart = false;
      if (c === '#') {
        comment = true;
        continue;
      }
      if (flow === 0) {
        while (indents.length && indents[indents.length - 1] > indent) indents.pop(), entries.pop();
        if (indents.length && indents[indents.length - 1] === indent) {
          if (++entries[entries.length - 1] > maxEntries) return tooMany(line, col);
        } else indents.push(indent), entries.push(1);
      }
    }
    if (c === '#' && (text[i - 1] === ' ' || text[i - 1] === '\t')) comment = true;
    else if ((c === '"' || c === "'") && /[\s[{,:-]/.test(text[i - 1] ?? ' ')) quote = c;
    else if (c === '[' || c === '{') flow++, flowEntries.push(1);
    else if ((c === ']' || c === '}') && flow > 0) flow--, flowEntries.pop();
    else if (c === ',' && flow > 0 && ++flowEntries[flowEntries.length - 1] > maxEntries) return tooMany(line, col);
    if (indents.length + flow > maxDepth) {
      return { line, col, message: `the recipe nests deeper than ${maxDepth} levels${limitNote('RECIPE_DEPTH')}` };
    }
  }
  return undefined;
}

/** More builds than the limit: the message, or undefined. */
export function buildCountProblem(count: number): string | undefined {
  const max = limit('BUILDS');
  return count > max ? `the recipe has ${count} builds (models and variants), over the limit of ${max}${limitNote('BUILDS')}` : undefined;
}

/** Per-build counts over their limits: the key (as positionOf takes it) and the message. */
export function buildLimitIssues(b: Build): { key: string; message: string }[] {
  const out: { key: string; message: string }[] = [];
  const check = (key: string, value: number | undefined, name: 'SAMPLES' | 'RUNS' | 'DISTILL_STEPS') => {
    const max = limit(name);
    if (value !== undefined && value > max) out.push({ key, message: `${value} is over the limit of ${max}${limitNote(name)}` });
  };
  check('calibration.samples', b.calibration?.samples, 'SAMPLES');
  check('evaluate.samples', b.evaluate?.samples, 'SAMPLES');
  check('evaluate.runs', b.evaluate?.runs, 'RUNS');
  check('steps.distill.steps', b.steps.distill?.steps, 'DISTILL_STEPS');
  check('steps.distill.epochs', b.steps.distill?.epochs, 'DISTILL_STEPS');
  return out;
}
