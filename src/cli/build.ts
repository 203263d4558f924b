/**
 * onnx-compress build [recipe] [options]   (options: src/cli/commands.ts, or `onnx-compress build --help`)
 *
 * Compresses every build of the recipe (default ./compress.yaml) with compressRecipe and writes
 * <out>/<output> and <out>/<id>.manifest.json for each as it finishes (default out: ./dist/onnx, relative
 * to the current folder), so builds that succeed are written even when others fail. Progress and warnings
 * are the pipeline's events, rendered by ./reporter.ts. --json prints a summary array on stdout:
 *   [{ id, output, manifest, bytesBefore, bytesAfter, accuracy?, latency?, webCheck?, cached, ms }]  (failed builds: { id, error, exitCode, ms })
 * where `ms` is the build's own time (from its start to its result or error).
 * Exit: 0 all ok, 1 a budget or compression check failed, 2 bad input (recipe, model, data).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { CompressError } from '../errors.js';
import { formatBytes, formatLatencyChange, formatMs, formatRatio } from '../format.js';
import { compressRecipe, defaultCacheDir, writeResult, type CompressResult } from '../pipeline.js';
import { writeIfChanged } from '../pipeline/present.js';
import { reportFiles } from '../pipeline/report.js';
import { loadRecipe } from '../recipe/index.js';
import { parseArgs, type ParsedArgs } from './args.js';
import { build as buildSpec, DEFAULT_OUT_DIR } from './specs.js';
import { createReporter } from './reporter.js';
import type { Device } from '../device.js';
import { checkOutputTargets } from '../recipe/outputs.js';
import { cliFlags, runningBuilds } from '../activity.js';
import { describeThrown } from '../limits.js';

export { DEFAULT_OUT_DIR };

export interface BuildArgs {
  recipe: string;
  out: string;
  /** Manifests, the aggregate JSON and the HTML report (default: out). */
  reportDir?: string;
  cache: boolean;
  cacheDir?: string;
  device?: Device;
  budget?: 'error' | 'warn';
  concurrency?: number;
  json: boolean;
  quiet: boolean;
  verbose: boolean;
}

/** The build command's arguments, typed (parsing and usage errors are args.ts's). */
export function buildArgs(a: ParsedArgs): BuildArgs {
  const o = a.options;
  return {
    recipe: a.positionals[0] ?? 'compress.yaml',
    out: (o.out as string | undefined) ?? DEFAULT_OUT_DIR,
    ...(o['report-dir'] !== undefined && { reportDir: o['report-dir'] as string }),
    cache: o['no-cache'] !== true,
    ...(o['cache-dir'] !== undefined && { cacheDir: o['cache-dir'] as string }),
    ...(o.device !== undefined && { device: o.device as BuildArgs['device'] }),
    ...(o.budget !== undefined && { budget: o.budget as BuildArgs['budget'] }),
    ...(o.concurrency !== undefined && { concurrency: o.concurrency as number }),
    json: o.json === true,
    quiet: o.quiet === true,
    verbose: o.verbose === true,
  };
}

export function parseBuildArgs(args: string[]): BuildArgs {
  return buildArgs(parseArgs(buildSpec, args));
}

export interface SummaryRow {
  id: string;
  output: string;
  manifest: string;
  bytesBefore: number;
  bytesAfter: number;
  accuracy?: { original?: number; compressed?: number; agreement?: number; samples: number };
  /** Median ms per run of one sample, onnxruntime-node and (evaluate.web) onnxruntime-web. */
  latency?: { original: number; compressed: number; web?: { original?: number; compressed: number } };
  /** The web check: run in onnxruntime-web, and whether every output agreed with onnxruntime-node. */
  webCheck?: { checked: boolean; agrees?: boolean; reason?: string };
  cached: boolean;
  /** Time the build took, from its start to its result. */
  ms?: number;
}

export async function run(parsed: ParsedArgs): Promise<number> {
  const a = buildArgs(parsed);
  const recipe = await loadRecipe(a.recipe);
  const reporter = createReporter({ quiet: a.quiet, verbose: a.verbose });
  const outDir = path.resolve(a.out);
  const reportDir = path.resolve(a.reportDir ?? a.out);
  checkOutputTargets(recipe, outDir, reportDir, a.reportDir === undefined ? '--out' : '--out / --report-dir');
  const tmpDir = path.join(a.cacheDir ?? defaultCacheDir(), 'tmp');
  const t0 = performance.now();
  const written = new Map<string, { result: CompressResult; file: string; manifestFile: string }>();
  const errors = new Map<string, unknown>();
  const elapsed = new Map<string, number>();
  for (const b of recipe.builds) runningBuilds.add(b.id); // until written: the exit guard names what is missing
  try {
    await compressRecipe(recipe, {
      cacheDir: a.cache ? (a.cacheDir ?? undefined) : false,
      ...(a.device && { device: a.device }),
      ...(a.budget && { budget: a.budget }),
      ...(a.concurrency !== undefined && { concurrency: a.concurrency }),
      onEvent: (e) => {
        if (e.kind === 'error') errors.set(e.model, e.error);
        if (e.kind === 'error' || e.kind === 'model-done') elapsed.set(e.model, Math.round(e.elapsedMs));
        reporter.onEvent(e);
      },
      // As each finishes: a later failure keeps the finished ones.
      onResult: (result) => {
        written.set(result.build.id, { result, ...writeResult(result, outDir, reportDir, tmpDir) });
        runningBuilds.delete(result.build.id);
      },
    });
  } catch (e) {
    // Every failed build has had its error event; anything else is not a build's failure.
    if (errors.size === 0) throw e;
  } finally {
    reporter.close();
  }

  let code = 0;
  const rows: (SummaryRow | { id: string; error: string; exitCode: number; ms?: number })[] = [];
  for (const { id } of recipe.builds) {
    const done = written.get(id);
    if (done && !errors.has(id)) {
      rows.push({ ...summaryRow(done.result, done.file, done.manifestFile), ...(elapsed.has(id) && { ms: elapsed.get(id) }) });
      continue;
    }
    const e = errors.get(id) as Error;
    const exitCode = e instanceof CompressError ? e.exitCode : 70;
    code = Math.max(code, exitCode);
    const message = e instanceof CompressError ? e.message : `internal error: ${cliFlags.debug ? (e?.stack ?? describeThrown(e)) : describeThrown(e)}`;
    if (!a.json) console.error(`onnx-compress: ${message.startsWith(id) ? '' : `${id}: `}${message}`);
    rows.push({ id, error: message, exitCode, ...(elapsed.has(id) && { ms: elapsed.get(id) }) });
  }

  writeReport(written, outDir, reportDir, tmpDir);
  // A build that wrote fewer models than asked never exits 0.
  if (code === 0 && written.size < recipe.builds.length) code = 2;
  if (a.json) process.stdout.write(JSON.stringify(rows, null, 2) + '\n');
  else printTable(rows, outDir, performance.now() - t0, a.quiet);
  return code;
}

/** onnx-compress.json and onnx-compress-report.html for the builds written (the manifests are already there). */
function writeReport(written: Map<string, { result: CompressResult; file: string }>, outDir: string, reportDir: string, tmpDir: string): void {
  if (written.size === 0) return;
  const models = [...written.values()].map(({ result, file }) => ({ result, fileName: path.relative(outDir, file).replaceAll('\\', '/') }));
  mkdirSync(reportDir, { recursive: true });
  for (const f of reportFiles(models, new Set())) writeIfChanged(path.join(reportDir, f.fileName), Buffer.from(f.source), tmpDir);
}

function summaryRow(r: CompressResult, file: string, manifestFile: string): SummaryRow {
  const acc = r.manifest.accuracy;
  const lat = r.manifest.latency;
  const web = r.manifest.webCheck;
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
    ...(lat && {
      latency: {
        original: lat.original.median,
        compressed: lat.compressed.median,
        ...(lat.web && { web: { ...(lat.web.original && { original: lat.web.original.median }), compressed: lat.web.compressed.median } }),
      },
    }),
    ...(web && { webCheck: { checked: web.checked, ...(web.outputs && { agrees: web.outputs.every((o) => o.ok) }), ...(web.reason && { reason: web.reason }) } }),
    cached: r.cached,
  };
}

function printTable(rows: (SummaryRow | { id: string; error: string })[], outDir: string, ms: number, quiet: boolean): void {
  const ok = rows.filter((r): r is SummaryRow => !('error' in r));
  if (quiet && ok.length === rows.length) return;
  const pct = (x?: number) => (x === undefined ? '' : `${(x * 100).toFixed(1)}%`);
  const table = [
    ['model', 'before', 'after', 'ratio', 'accuracy', 'agreement', 'latency', 'web latency', 'web check', ''],
    ...rows.map((r) =>
      'error' in r
        ? [r.id, '', '', '', '', '', '', '', '', 'FAILED']
        : [
            r.id,
            formatBytes(r.bytesBefore),
            formatBytes(r.bytesAfter),
            formatRatio(r.bytesBefore, r.bytesAfter),
            r.accuracy?.compressed !== undefined ? `${pct(r.accuracy.original)} → ${pct(r.accuracy.compressed)}` : '',
            pct(r.accuracy?.agreement),
            r.latency ? formatLatencyChange(r.latency.original, r.latency.compressed) : '',
            r.latency?.web ? formatLatencyChange(r.latency.web.original ?? NaN, r.latency.web.compressed) : '',
            !r.webCheck ? '' : !r.webCheck.checked ? 'not run' : r.webCheck.agrees === false ? 'differs' : 'ok',
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
