/**
 * Where things are in a recipe's YAML text: every key and value by its key path, as 1-based line:col,
 * and the problems found so far, thrown together as one RecipeError.
 */
import path from 'node:path';
import type { Document, LineCounter } from 'yaml';
import { isAlias, isMap, isScalar, isSeq } from 'yaml';
import { CompressError } from '../errors.js';
import { limit } from '../limits.js';

export interface RecipeIssue {
  /** Absolute path of the recipe. */
  file: string;
  line: number;
  column: number;
  /** Key path in the recipe, e.g. `models.spam.quantize.dtype` ('' for the whole file). */
  path: string;
  /** What is wrong, without the location or path. */
  message: string;
}

/** Every problem found in a recipe, at once; `message` has one `file:line:col: path: problem` line per issue. */
export class RecipeError extends CompressError {
  readonly issues: RecipeIssue[];
  constructor(issues: RecipeIssue[]) {
    const [first, ...rest] = issues;
    const head = (first.path ? `${first.path}: ` : '') + first.message;
    super('recipe', [head, ...rest.map(formatIssue)].join('\n'), {
      file: displayPath(first.file),
      line: first.line,
      column: first.column,
    });
    this.name = 'RecipeError';
    this.issues = issues;
  }
}

export function formatIssue(i: RecipeIssue): string {
  return `${displayPath(i.file)}:${i.line}:${i.column}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

export type Seg = string | number;
export type LinePos = { line: number; col: number };
type YNode = { range?: [number, number, number] | null };
const SEP = '\u0000';

export class Source {
  readonly issues: (RecipeIssue & { base: string })[] = [];
  omitted = 0;
  constructor(
    readonly file: string,
    readonly doc: Document,
    readonly lines: LineCounter,
  ) {}

  // Every mapping entry's key and value nodes by path, so that positions for hundreds of builds stay cheap.
  private index?: Map<string, { key?: YNode; value?: YNode }>;
  private memo = new Map<string, LinePos>();

  private buildIndex(): Map<string, { key?: YNode; value?: YNode }> {
    const index = new Map<string, { key?: YNode; value?: YNode }>([['', { value: this.doc.contents as YNode }]]);
    // An alias shares its anchor's positions, so aliased nodes are walked again under the alias's path; a
    // budget on those walks keeps a billion-laughs recipe (aliases of aliases) from expanding here.
    let aliasBudget = 10_000;
    const walk = (node: unknown, id: string, depth: number, viaAlias = false) => {
      if (isAlias(node)) {
        if (depth >= 32 || aliasBudget <= 0) return;
        node = node.resolve(this.doc);
        viaAlias = true;
      }
      if (viaAlias && aliasBudget-- <= 0) return;
      if (isMap(node)) {
        for (const pair of node.items) {
          const k = id + SEP + (isScalar(pair.key) ? String(pair.key.value) : String(pair.key));
          index.set(k, { key: pair.key as YNode, value: pair.value as YNode });
          walk(pair.value, k, depth + 1, viaAlias);
        }
      } else if (isSeq(node)) {
        node.items.forEach((item, i) => {
          index.set(id + SEP + i, { value: item as YNode });
          walk(item, id + SEP + i, depth + 1, viaAlias);
        });
      }
    };
    walk(this.doc.contents, '', 0);
    return index;
  }

  /** Whether the value at `keyPath` is written as nothing at all (`key:` and no value). */
  isEmpty(keyPath: Seg[]): boolean {
    this.index ??= this.buildIndex();
    const range = this.index.get(keyPath.map((k) => SEP + k).join(''))?.value?.range;
    return !!range && range[1] === range[0];
  }

  /** 'key': where the key is written; 'value': where its value is (the key, when the value is empty). */
  position(keyPath: Seg[], at: 'key' | 'value'): LinePos {
    const id = keyPath.map((k) => SEP + k).join('');
    const memoKey = at + id;
    const known = this.memo.get(memoKey);
    if (known) return known;
    this.index ??= this.buildIndex();
    // A path that is not written (a defaulted key) points at its nearest written ancestor.
    let found = this.index.get(id);
    for (let n = keyPath.length - 1; !found && n >= 0; n--) found = this.index.get(keyPath.slice(0, n).map((k) => SEP + k).join(''));
    const exact = found === this.index.get(id);
    const nonEmpty = (n?: YNode) => (n?.range && n.range[1] > n.range[0] ? n : undefined);
    const node = exact && at === 'value' ? (nonEmpty(found?.value) ?? found?.key) : (found?.key ?? found?.value);
    const pos = node?.range ? this.lines.linePos(node.range[0]) : { line: 1, col: 1 };
    this.memo.set(memoKey, pos);
    return pos;
  }

  report(keyPath: Seg[], message: string, at: 'key' | 'value', note = ''): void {
    this.reportAt(this.position(keyPath, at), keyPath, message, note);
  }

  reportAt(pos: LinePos, keyPath: Seg[], message: string, note = ''): void {
    const p = keyPath.join('.');
    if (this.issues.length >= limit('RECIPE_ISSUES')) return void this.omitted++; // listing 1M unknown keys helps nobody
    // The same defaults or model key is checked once per build; say it once.
    if (this.issues.some((i) => i.line === pos.line && i.column === pos.col && i.path === p && i.base === message)) return;
    this.issues.push({ file: this.file, line: pos.line, column: pos.col, path: p, message: message + note, base: message });
  }

  throwIfAny(): void {
    if (!this.issues.length) return;
    const issues = this.issues
      .map(({ base: _, ...issue }) => issue)
      .sort((a, b) => a.line - b.line || a.column - b.column);
    if (this.omitted) {
      const last = issues[issues.length - 1];
      issues.push({ ...last, path: '', message: `… and ${this.omitted} more problems not listed` });
    }
    throw new RecipeError(issues);
  }
}

export function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

