/**
 * onnx-compress build [recipe] [--out dir] [--no-cache] [--cache-dir dir] [--device cpu|gpu|auto]
 *                     [--concurrency n] [--budget error|warn] [--json] [--quiet]
 *
 * Compresses every build of the recipe (default ./compress.yaml) and writes <out>/<output> and
 * <out>/<id>.manifest.json for each (default out: ./dist/onnx, relative to the current folder). Builds that
 * succeed are written even when others fail. --json prints a summary array on stdout:
 *   [{ id, output, manifest, bytesBefore, bytesAfter, accuracy?, cached }]  (failed builds: { id, error, exitCode })
 * Exit: 0 all ok, 1 a budget or compression check failed, 2 bad input (recipe, model, data).
 */
import path from 'node:path';
import { CompressError } from '../errors.js';
import { compressBuild, defaultConcurrency, mapConcurrent, writeResult, type CompressResult, type PipelineOptions } from '../pipeline.js';
import { createReporter, formatBytes, formatMs } from '../pipeline/progress.js';
import { loadRecipe } from '../recipe/index.js';

export const DEFAULT_OUT_DIR = 'dist/onnx';

export interface BuildArgs {
  recipe: string;
  out: string;
  cache: boolean;
  cacheDir?: string;
  device?: 'cpu' | 'gpu' | 'auto';
  budget?: 'error' | 'warn';
  concurrency?: number;
  json: boolean;
  quiet: boolean;
}

function usageError(message: string): CompressError {
  return new CompressError('recipe', `${message}\nusage: onnx-compress build [recipe] [--out dir] [--no-cache] [--cache-dir dir] [--device cpu|gpu|auto] [--concurrency n] [--budget error|warn] [--json] [--quiet]`);
}

export function parseBuildArgs(args: string[]): BuildArgs {
  const out: BuildArgs = { recipe: 'compress.yaml', out: DEFAULT_OUT_DIR, cache: true, json: false, quiet: false };
  let recipeSet = false;
  for (let i = 0; i < args.length; i++) {
    const raw = args[i];
    const eq = raw.startsWith('--') ? raw.indexOf('=') : -1;
    const flag = eq > 0 ? raw.slice(0, eq) : raw;
    const value = (): string => {
      if (eq > 0) return raw.slice(eq + 1);
      const v = args[++i];
      if (v === undefined || v.startsWith('--')) throw usageError(`${flag} needs a value`);
      return v;
    };
    const oneOf = <T extends string>(v: string, allowed: readonly T[]): T => {
      if (!(allowed as readonly string[]).includes(v)) throw usageError(`${flag}: expected one of ${allowed.join(', ')}, found "${v}"`);
      return v as T;
    };
    switch (flag) {
      case '--out':
      case '-o':
        out.out = value();
        break;
      case '--no-cache':
        out.cache = false;
        break;
      case '--cache-dir':
        out.cacheDir = value();
        break;
      case '--device':
        out.device = oneOf(value(), ['cpu', 'gpu', 'auto'] as const);
        break;
      case '--budget':
        out.budget = oneOf(value(), ['error', 'warn'] as const);
        break;
      case '--concurrency':
      case '-j': {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw usageError(`${flag}: expected a positive integer, found "${v}"`);
        out.concurrency = n;
        break;
      }
      case '--json':
        out.json = true;
        break;
      case '--quiet':
      case '-q':
        out.quiet = true;
        break;
      default:
        if (raw.startsWith('-')) throw usageError(`unknown option ${raw}`);
        if (recipeSet) throw usageError(`unexpected argument "${raw}" (the recipe is already ${out.recipe})`);
        out.recipe = raw;
        recipeSet = true;
    }
  }
  return out;
}

export interface SummaryRow {
  id: string;
  output: string;
  manifest: string;
  bytesBefore: number;
  bytesAfter: number;
  accuracy?: { original?: number; compressed?: number; agreement?: number; samples: number };
  cached: boolean;
}

export async function run(args: string[]): Promise<number> {
  const a = parseBuildArgs(args);
  const recipe = await loadRecipe(a.recipe);
  const reporter = createReporter({ quiet: a.quiet });
  const opts: PipelineOptions = {
    cacheDir: a.cache ? (a.cacheDir ?? undefined) : false,
    ...(a.device && { device: a.device }),
    ...(a.budget && { budget: a.budget }),
    log: reporter.log,
    onProgress: reporter.onProgress,
    recipeFile: recipe.file,
  };
  const outDir = path.resolve(a.out);
  const t0 = performance.now();
  const written: { result: CompressResult; file: string; manifestFile: string }[] = [];
  const settled = await mapConcurrent(recipe.builds, defaultConcurrency(recipe.builds.length, a.concurrency), async (b) => {
    const result = await compressBuild(b, opts);
    const files = writeResult(result, outDir); // as each finishes: a later failure keeps the finished ones
    written.push({ result, ...files });
    return { result, ...files };
  });
  reporter.close();

  let code = 0;
  const rows: (SummaryRow | { id: string; error: string; exitCode: number })[] = [];
  settled.forEach((s, i) => {
    const id = recipe.builds[i].id;
    if (s.status === 'fulfilled') {
      rows.push(summaryRow(s.value.result, s.value.file, s.value.manifestFile));
      return;
    }
    const e = s.reason as Error;
    const exitCode = e instanceof CompressError ? e.exitCode : 70;
    code = Math.max(code, exitCode);
    const message = e instanceof CompressError ? e.message : `internal error: ${e?.stack ?? String(e)}`;
    if (!a.json) console.error(`onnx-compress: ${message.startsWith(id) ? '' : `${id}: `}${message}`);
    rows.push({ id, error: message, exitCode });
  });

  if (a.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  else printTable(rows, outDir, performance.now() - t0, a.quiet);
  return code;
}

function summaryRow(r: CompressResult, file: string, manifestFile: string): SummaryRow {
  const acc = r.manifest.accuracy;
  return {
    id: r.build.id,
    output: file,
    manifest: manifestFile,
    bytesBefore: r.manifest.sizes.before.bytes,
    bytesAfter: r.manifest.output.bytes,
    ...(acc && {
      accuracy: {
        ...(acc.original.accuracy != null && { original: acc.original.accuracy }),
        ...(acc.compressed.accuracy != null && { compressed: acc.compressed.accuracy }),
        ...(acc.metrics?.agreement != null && { agreement: acc.metrics.agreement }),
        samples: acc.samples,
      },
    }),
    cached: r.cached,
  };
}

function printTable(rows: (SummaryRow | { id: string; error: string })[], outDir: string, ms: number, quiet: boolean): void {
  const ok = rows.filter((r): r is SummaryRow => !('error' in r));
  if (quiet && ok.length === rows.length) return;
  const pct = (x?: number) => (x === undefined ? '' : `${(x * 100).toFixed(1)}%`);
  const table = [
    ['model', 'before', 'after', 'ratio', 'accuracy', 'agreement', ''],
    ...rows.map((r) =>
      'error' in r
        ? [r.id, '', '', '', '', '', 'FAILED']
        : [
            r.id,
            formatBytes(r.bytesBefore),
            formatBytes(r.bytesAfter),
            r.bytesBefore ? `${((r.bytesAfter / r.bytesBefore) * 100).toFixed(1)}%` : '',
            r.accuracy?.compressed !== undefined ? `${pct(r.accuracy.original)} → ${pct(r.accuracy.compressed)}` : '',
            pct(r.accuracy?.agreement),
            r.cached ? 'cached' : '',
          ],
    ),
  ];
  // Columns that no row fills (accuracy without evaluate data) are left out.
  const keep = table[0].map((_, c) => c < 4 || table.slice(1).some((row) => row[c] !== ''));
  const cols = table.map((row) => row.filter((_, c) => keep[c]));
  const right = new Set([1, 2, 3]);
  const widths = cols[0].map((_, c) => Math.max(...cols.map((row) => row[c].length)));
  const lines = cols.map((row) =>
    row
      .map((cell, c) => (right.has(c) ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
      .join('  ')
      .trimEnd(),
  );
  const relative = path.relative(process.cwd(), outDir);
  const rel = relative === '' ? '.' : relative.startsWith('..') || path.isAbsolute(relative) ? outDir : relative;
  console.log([...lines, '', `${ok.length}/${rows.length} models written to ${rel} in ${formatMs(ms)}`].join('\n'));
}
