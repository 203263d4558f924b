/**
 * Batched whole-build fuzzing: many mutants per `onnx-compress build` process, as a user's recipe with
 * many models is built (one process per mutant costs ~1–2 s of Node and onnxruntime start-up, which made
 * 10,000 mutants take hours on a small machine).
 *
 *   npm run fuzz -- --batch 50 --cases 10000 [--seed S] [--timeout-ms T] [--isolate-ms I] [--models a,b] [--out dir]
 *
 * Each batch is one folder with mutants m0.onnx … m<n-1>.onnx of real models (scripts/fuzz-mutate.ts) and
 * a compress.yaml with one model per mutant (no steps, int8, float16 or int4), built with
 * `node dist/cli.js build --json --no-cache`. Checked per model, from the --json rows:
 *   - a failed build: exit code 1 or 2 (never 70), no "internal error", a message that names a place;
 *   - a written build: its model and manifest files exist;
 *   - its own time (`ms`) is within --timeout-ms; one past it is rebuilt alone, and is a finding (a hang
 *     past the limit) only when it takes more than 4× the limit alone (on a loaded machine at nice 19 a
 *     3 s build can take 40 s; onnxruntime's own work is bounded by the isolation limit).
 * Models: 9 real models (scripts/fuzz-mutate.ts) get 85 % of the cases, the ONNX operator test models
 * with subgraphs and recurrences (GRU, Scan, If, Loop, LSTM, RNN) 15 %.
 * Checked per process: no signal (native crash), no timeout (the batch limit is --timeout-ms plus
 * 30 s per model), an exit code that is the worst of its models' (0 only when every model was written),
 * valid JSON with one row per model, no stack trace on stderr. When a process fails a check, every model
 * of the batch is rebuilt alone (one process each, --timeout-ms) to find the culprit; each that fails alone
 * (with 4× --timeout-ms) is a finding, and a batch whose models all pass alone is kept as a finding of its own.
 *
 * Findings are copied (mutant, recipe, stderr) to <out>/findings/<case>/; every outcome goes to
 * <out>/outcomes.jsonl and the figures to <out>/summary.json (rewritten after each batch).
 * `ONNX_COMPRESS_LIMIT_ISOLATE_MS` is set to --isolate-ms (default 10 s) for the builds, so that a model
 * that hangs onnxruntime is stopped by the product's own limit well within --timeout-ms.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { seededRandom } from '../src/random.js';
import { classifyMessage, defaultModels, isOperatorModel, killGroupAfter, modelLabel, mutate, pick, stepsBlock } from './fuzz-mutate.js';

export interface BatchArgs {
  cases: number;
  batch: number;
  seed: number;
  /** Per-model limit: a model's own build time above it is a hang finding; a single rebuild is killed at it. */
  timeoutMs: number;
  isolateMs: number;
  models: string[];
  out: string;
  /** The CLI to run (default dist/cli.js; a copy keeps a long run on the same code while dist is rebuilt). */
  cli?: string;
}

export interface BatchOutcome {
  case: number;
  batch: number;
  model: string;
  what: string;
  steps: string;
  exitCode: number | null;
  ms: number | null;
  message: string;
  finding?: string;
}

export interface BatchSummary {
  seed: number;
  batchSize: number;
  timeoutMs: number;
  isolateMs: number;
  cases: number;
  /** Mutants of real models (the rest are of the ONNX operator test models). */
  realModelCases: number;
  models: Record<string, number>;
  byExit: Record<string, number>;
  findings: { case: number; model: string; what: string; finding: string; message: string }[];
  batchFindings: { batch: number; finding: string }[];
  /** Models past the limit inside a batch and within it alone (CPU contention, not a hang). */
  slowInBatchOnly: { case: number; model: string; batchMs: number; aloneMs: number | null }[];
  batches: number;
  processes: number;
  reruns: number;
  slowestModelMs: number;
  slowestBatchMs: number;
  peakRssBytes: number;
  wallMs: number;
  mutantsPerMinute: number;
  loadavg: { start: number[]; end?: number[] };
}

interface Row {
  id: string;
  error?: string;
  exitCode?: number;
  output?: string;
  manifest?: string;
  ms?: number;
}

interface Proc {
  status: number | null;
  signal: string | null;
  ms: number;
  stdout: string;
  stderr: string;
  rssBytes?: number;
}

const TIME = '/usr/bin/time';
const OPERATOR_SHARE = 0.15;

/** Runs one build; peak RSS (largest process, isolation children included) when /usr/bin/time exists. */
function build(cli: string, dir: string, timeoutMs: number, isolateMs: number): Proc {
  const args = [cli, 'build', '--out', 'dist', '--no-cache', '--json'];
  const timed = existsSync(TIME);
  const t0 = performance.now();
  const [cmd, argv] = killGroupAfter(timeoutMs, timed ? TIME : process.execPath, timed ? ['-f', '\nfuzz-rss-kb=%M', process.execPath, ...args] : args);
  const p = spawnSync(cmd, argv, {
    cwd: dir,
    encoding: 'utf8',
    timeout: timeoutMs + 5000, // a backstop: timeout(1) ends the group at timeoutMs
    maxBuffer: 64 << 20,
    env: { ...process.env, ONNX_COMPRESS_LIMIT_ISOLATE_MS: String(isolateMs), CI: '1' },
  });
  let stderr = p.stderr ?? '';
  let status = p.status;
  let signal = p.signal as string | null;
  let rssBytes: number | undefined;
  const m = /\nfuzz-rss-kb=(\d+)\s*$/.exec(stderr);
  if (m) {
    rssBytes = Number(m[1]) * 1024;
    stderr = stderr.slice(0, m.index);
  }
  // GNU time reports a child killed by a signal as "Command terminated by signal N" and exits 128+N.
  const sig = /Command terminated by signal (\d+)/.exec(stderr);
  if (sig && !signal) {
    signal = `signal ${sig[1]}`;
    status = null;
  }
  return { status, signal, ms: Math.round(performance.now() - t0), stdout: p.stdout ?? '', stderr, ...(rssBytes !== undefined && { rssBytes }) };
}

function recipeFor(entries: { id: string; steps: string }[]): string {
  return `defaults:\n  device: cpu\nmodels:\n${entries.map((e) => `  ${e.id}:\n    source: ${e.id}.onnx\n${e.steps}`).join('')}`;
}

/** What is wrong with a whole process, or undefined. `rows` are its parsed --json rows (undefined: not parsable). */
function processProblem(p: Proc, rows: Row[] | undefined, n: number, limitMs: number): string | undefined {
  if (p.signal) return p.ms >= limitMs ? `timeout after ${p.ms} ms (${p.signal})` : `killed by ${p.signal}`;
  if (!rows) return `stdout is not the --json summary (exit ${p.status})`;
  if (rows.length !== n) return `${rows.length} rows for ${n} models`;
  // An exit code other than 0/1/2 that a model's row explains (70: an untyped error) is that row's finding.
  const worst = Math.max(0, ...rows.map((r) => r.exitCode ?? 0));
  if (p.status !== worst) return `exit ${p.status}, but the worst model's exit code is ${worst}`;
  if (/\n\s+at .+:\d+:\d+\)?\n/.test(p.stderr)) return 'stack trace without --debug';
  return undefined;
}

function parseRows(stdout: string): Row[] | undefined {
  try {
    const v = JSON.parse(stdout);
    return Array.isArray(v) ? (v as Row[]) : undefined;
  } catch {
    return undefined;
  }
}

/** Why one model's row is a finding, or undefined. */
function rowProblem(row: Row, dir: string, limitMs: number): string | undefined {
  if (row.ms !== undefined && row.ms > limitMs) return `hang: ${row.ms} ms, past the ${limitMs} ms limit`;
  if (row.error !== undefined) return classifyMessage(row.exitCode ?? 70, row.error);
  for (const f of [row.output, row.manifest]) if (!f || !existsSync(path.resolve(dir, f))) return `written build without its ${f === row.output ? 'model' : 'manifest'} file`;
  return undefined;
}

export function runBatched(a: BatchArgs, log: (line: string) => void = console.log): BatchSummary {
  const cli = path.resolve(a.cli ?? 'dist/cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  mkdirSync(path.join(a.out, 'findings'), { recursive: true });
  const outcomesFile = path.join(a.out, 'outcomes.jsonl');
  writeFileSync(outcomesFile, '');
  const r = seededRandom(a.seed);
  const sources = new Map(a.models.map((m) => [m, readFileSync(m)]));
  // Operator test models (GRU, Scan, If …) get OPERATOR_SHARE of the cases; real models the rest.
  const operators = a.models.filter(isOperatorModel);
  const real = a.models.filter((m) => !isOperatorModel(m));
  const t0 = performance.now();
  const s: BatchSummary = {
    seed: a.seed,
    batchSize: a.batch,
    timeoutMs: a.timeoutMs,
    isolateMs: a.isolateMs,
    cases: 0,
    realModelCases: 0,
    models: {},
    byExit: { 0: 0, 1: 0, 2: 0 },
    findings: [],
    batchFindings: [],
    slowInBatchOnly: [],
    batches: 0,
    processes: 0,
    reruns: 0,
    slowestModelMs: 0,
    slowestBatchMs: 0,
    peakRssBytes: 0,
    wallMs: 0,
    mutantsPerMinute: 0,
    loadavg: { start: loadavg().map((x) => Math.round(x * 100) / 100) },
  };
  const save = () => writeFileSync(path.join(a.out, 'summary.json'), JSON.stringify(s, null, 2));

  for (let b = 0, first = 0; first < a.cases; b++, first += a.batch) {
    const n = Math.min(a.batch, a.cases - first);
    const dir = mkdtempSync(path.join(tmpdir(), 'fuzzb-'));
    const cases: BatchOutcome[] = [];
    for (let k = 0; k < n; k++) {
      const model = operators.length && (!real.length || r() < OPERATOR_SHARE) ? pick(r, operators) : pick(r, real);
      const { bytes, what } = mutate(sources.get(model)!, model, r);
      writeFileSync(path.join(dir, `m${k}.onnx`), bytes);
      cases.push({ case: first + k, batch: b, model: modelLabel(model), what, steps: stepsBlock(r).trim(), exitCode: null, ms: null, message: '' });
    }
    const entries = cases.map((c, k) => ({ id: `m${k}`, steps: c.steps ? `    ${c.steps}\n` : '' }));
    writeFileSync(path.join(dir, 'compress.yaml'), recipeFor(entries));
    // Generous: only a real hang should reach it (on a shared machine at nice 19 a batch of models that
    // takes 1 s each can take 10 s each); per-model times are checked from the rows.
    const batchLimit = a.timeoutMs + n * 30_000;
    const p = build(cli, dir, batchLimit, a.isolateMs);
    s.processes++;
    s.slowestBatchMs = Math.max(s.slowestBatchMs, p.ms);
    s.peakRssBytes = Math.max(s.peakRssBytes, p.rssBytes ?? 0);
    const rows = parseRows(p.stdout);
    const problem = processProblem(p, rows, n, batchLimit);
    if (rows && rows.length === n) {
      rows.forEach((row, k) => {
        const c = cases[k];
        c.exitCode = row.error !== undefined ? (row.exitCode ?? 70) : 0;
        c.ms = row.ms ?? null;
        c.message = row.error ?? '';
        c.finding = rowProblem(row, dir, a.timeoutMs);
      });
    }
    /** Model k rebuilt alone in its own process: its finding there (undefined when it passes), its outcome filled in. */
    const alone = (k: number, context: string, limitMs = 4 * a.timeoutMs): string | undefined => {
      const c = cases[k];
      const one = mkdtempSync(path.join(tmpdir(), 'fuzz1-'));
      try {
        cpSync(path.join(dir, `m${k}.onnx`), path.join(one, `m${k}.onnx`));
        writeFileSync(path.join(one, 'compress.yaml'), recipeFor([entries[k]]));
        const q = build(cli, one, limitMs, a.isolateMs);
        s.reruns++;
        s.peakRssBytes = Math.max(s.peakRssBytes, q.rssBytes ?? 0);
        const qRows = parseRows(q.stdout);
        if (qRows?.length === 1) {
          c.exitCode = qRows[0].error !== undefined ? (qRows[0].exitCode ?? 70) : 0;
          c.ms = qRows[0].ms ?? q.ms;
          c.message = qRows[0].error ?? '';
        } else c.exitCode = q.status;
        const f = processProblem(q, qRows, 1, limitMs) ?? (qRows?.length === 1 ? rowProblem(qRows[0], one, limitMs) : undefined);
        if (f) {
          writeFileSync(path.join(one, 'stderr.txt'), q.stderr);
          cpSync(one, path.join(a.out, 'findings', String(c.case)), { recursive: true });
          return `${f} (alone; ${context})`;
        }
        return undefined;
      } finally {
        rmSync(one, { recursive: true, force: true });
      }
    };
    if (!problem) {
      // A model slower than the limit inside a batch is built again alone with 4× the limit, so CPU
      // contention (a shared machine, nice 19) is not taken for a hang: onnxruntime's work is bounded by
      // the isolation limit, so a real hang stays past any limit; one past 4× the limit alone is a finding.
      cases.forEach((c, k) => {
        if (!c.finding?.startsWith('hang:')) return;
        const was = c.finding;
        c.finding = alone(k, `in its batch: ${was}`);
        if (!c.finding) s.slowInBatchOnly.push({ case: c.case, model: c.model, batchMs: Number(/\d+/.exec(was)![0]), aloneMs: c.ms });
      });
    }
    if (problem) {
      // Find the culprit: each model alone, in its own process.
      s.batchFindings.push({ batch: b, finding: problem });
      let culprits = 0;
      cases.forEach((c, k) => {
        c.finding = alone(k, `in its batch: ${problem}`);
        if (c.finding) culprits++;
      });
      if (!culprits) {
        writeFileSync(path.join(dir, 'stderr.txt'), p.stderr);
        cpSync(dir, path.join(a.out, 'findings', `batch-${b}`), { recursive: true });
        log(`batch ${b}: FINDING ${problem}, and no model fails alone: kept as findings/batch-${b}`);
      } else s.batchFindings[s.batchFindings.length - 1].finding += ` (${culprits} culprit${culprits > 1 ? 's' : ''} found alone)`;
    } else {
      for (const [k, c] of cases.entries()) {
        if (!c.finding || existsSync(path.join(a.out, 'findings', String(c.case)))) continue;
        const keep = path.join(a.out, 'findings', String(c.case));
        mkdirSync(keep, { recursive: true });
        cpSync(path.join(dir, `m${k}.onnx`), path.join(keep, `m${k}.onnx`));
        writeFileSync(path.join(keep, 'compress.yaml'), recipeFor([entries[k]]));
        writeFileSync(path.join(keep, 'stderr.txt'), p.stderr);
      }
    }
    rmSync(dir, { recursive: true, force: true });

    for (const c of cases) {
      s.cases++;
      s.models[c.model] = (s.models[c.model] ?? 0) + 1;
      if (!c.model.startsWith('test_')) s.realModelCases++;
      if (c.exitCode !== null && c.exitCode in s.byExit) s.byExit[c.exitCode]++;
      if (c.ms !== null) s.slowestModelMs = Math.max(s.slowestModelMs, c.ms);
      if (c.finding) {
        s.findings.push({ case: c.case, model: c.model, what: c.what, finding: c.finding, message: c.message.slice(0, 500) });
        log(`case ${c.case}: FINDING ${c.finding} — ${c.model} [${c.steps || 'no steps'}]: ${c.what} → ${c.message.slice(0, 300)}`);
      }
      appendFileSync(outcomesFile, JSON.stringify(c) + '\n');
    }
    s.batches++;
    s.wallMs = Math.round(performance.now() - t0);
    s.mutantsPerMinute = Math.round((s.cases / s.wallMs) * 60_000);
    s.loadavg.end = loadavg().map((x) => Math.round(x * 100) / 100);
    save();
    log(
      `batch ${b}: ${n} mutants in ${(p.ms / 1000).toFixed(1)} s (exit ${p.status ?? p.signal}${problem ? `; ${problem}` : ''}); ` +
        `total ${s.cases}/${a.cases}, ${s.findings.length} findings, ${s.mutantsPerMinute}/min, load ${s.loadavg.end[0]}`,
    );
  }
  log(
    `${s.cases} mutants (${s.realModelCases} of real models) of ${Object.keys(s.models).length} models in ${s.processes} processes (+${s.reruns} single rebuilds), seed ${a.seed}: ` +
      `exit 0/1/2 = ${s.byExit[0]}/${s.byExit[1]}/${s.byExit[2]}, ${s.findings.length} findings, slowest model ${s.slowestModelMs} ms, ` +
      `peak RSS ${Math.round(s.peakRssBytes / 2 ** 20)} MiB, ${(s.wallMs / 60_000).toFixed(1)} min; ${path.join(a.out, 'summary.json')}`,
  );
  return s;
}

export function batchDefaults(): Omit<BatchArgs, 'cases' | 'batch'> {
  return { seed: 1, timeoutMs: 60_000, isolateMs: 10_000, models: defaultModels(), out: 'bench/out/fuzz-batch' };
}
