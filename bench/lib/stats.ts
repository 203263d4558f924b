/**
 * Small statistics and formatting helpers for the benches: medians with min–max over repeated runs,
 * percentiles, unit formatting, and Markdown tables.
 */

export interface Stat {
  median: number;
  min: number;
  max: number;
  /** Runs measured (NaNs dropped). */
  n: number;
  runs: number[];
}

const finite = (xs: readonly number[]) => xs.filter((x) => Number.isFinite(x));

/** Median (mean of the two middle values for an even count); NaN for no values. */
export function median(xs: readonly number[]): number {
  const s = finite(xs).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Percentile by linear interpolation between closest ranks, p in [0, 100]. */
export function percentile(xs: readonly number[], p: number): number {
  const s = finite(xs).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const at = (Math.min(100, Math.max(0, p)) / 100) * (s.length - 1);
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return s[lo] + (s[hi] - s[lo]) * (at - lo);
}

export function summarize(xs: readonly number[]): Stat {
  const s = finite(xs);
  return { median: median(s), min: s.length ? Math.min(...s) : NaN, max: s.length ? Math.max(...s) : NaN, n: s.length, runs: [...xs] };
}

/** Least-squares fit y = a + b·x. */
export function linearFit(xs: readonly number[], ys: readonly number[]): { intercept: number; slope: number; r2: number } {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
    syy += (ys[i] - my) ** 2;
  }
  const slope = sxx ? sxy / sxx : NaN;
  return { intercept: my - slope * mx, slope, r2: sxx && syy ? (sxy * sxy) / (sxx * syy) : NaN };
}

// ------------------------------------------------------------------------------------------- format

export const MB = 1e6;
export const MiB = 2 ** 20;

/** Milliseconds with sensible precision: 0.123 ms, 4.56 ms, 78.9 ms, 1234 ms → "1.23 s" above 10 s. */
export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  const a = Math.abs(ms);
  if (a >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (a >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return `${a < 1 ? ms.toFixed(3) : a < 10 ? ms.toFixed(2) : a < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
}

/** Bytes as MB (10^6) with one decimal, or KB below 1 MB. */
export function fmtBytes(b: number): string {
  if (!Number.isFinite(b)) return '–';
  if (Math.abs(b) >= 1e9) return `${(b / 1e9).toFixed(2)} GB`;
  if (Math.abs(b) >= 1e6) return `${(b / 1e6).toFixed(1)} MB`;
  if (Math.abs(b) >= 1e3) return `${(b / 1e3).toFixed(1)} KB`;
  return `${b} B`;
}

export function fmtMiB(b: number): string {
  return Number.isFinite(b) ? `${(b / MiB).toFixed(0)} MiB` : '–';
}

export function fmtRatio(x: number, digits = 2): string {
  return Number.isFinite(x) ? `${x.toFixed(digits)}×` : '–';
}

export function fmtPct(x: number, digits = 1): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(digits)} %` : '–';
}

/** "median (min–max)" with a formatter, and the run count when it is not `expectRuns`. */
export function fmtStat(s: Stat, fmt: (v: number) => string = fmtMs, expectRuns?: number): string {
  if (!s.n) return '–';
  const range = s.n > 1 ? ` (${fmt(s.min)}–${fmt(s.max)})` : '';
  const n = expectRuns !== undefined && s.n !== expectRuns ? `, n=${s.n}` : '';
  return `${fmt(s.median)}${range}${n}`;
}

/** met / MISSED mark for a target check; "–" when it could not be measured. */
export function mark(ok: boolean | undefined): string {
  return ok === undefined ? '–' : ok ? 'met' : '**missed**';
}

// ------------------------------------------------------------------------------------------- tables

export type Align = 'left' | 'right';

/** A GitHub-flavoured Markdown table; cells are escaped for `|`. Columns right-aligned where asked. */
export function markdownTable(headers: string[], rows: (string | number)[][], align: Align[] = []): string {
  const esc = (c: string | number) => String(c).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const cells = [headers.map(esc), ...rows.map((r) => headers.map((_, i) => esc(r[i] ?? '')))];
  const width = headers.map((_, i) => Math.max(3, ...cells.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (align[i] === 'right' ? c.padStart(width[i]) : c.padEnd(width[i]))).join(' | ')} |`;
  const sep = `|${width.map((w, i) => (align[i] === 'right' ? `${'-'.repeat(w + 1)}:` : '-'.repeat(w + 2))).join('|')}|`;
  return [line(cells[0]), sep, ...cells.slice(1).map(line)].join('\n');
}

/** Anything that runs one input (an onnxruntime-node or -web session). */
export type Runner<F = Record<string, unknown>> = { run(feeds: F): Promise<unknown> };

/**
 * Every runner in rotation, `runs` rounds after `warm` warm-up calls each, so machine noise hits all
 * alike; per runner the call times (ms).
 */
export async function rotation<F>(runners: Runner<F>[], feeds: (i: number) => F, runs: number, warm: number): Promise<number[][]> {
  for (const r of runners) for (let i = 0; i < warm; i++) await r.run(feeds(i));
  const times = runners.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    const f = feeds(i);
    for (let k = 0; k < runners.length; k++) {
      const t = performance.now();
      await runners[k].run(f);
      times[k].push(performance.now() - t);
    }
  }
  return times;
}
