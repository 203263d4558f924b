/**
 * `npm run bench`: runs every bench/*.ts script (each a child process, one after another, with a time
 * limit each; a failing or timed-out bench is reported, not fatal) and writes one report:
 *
 *   full     bench/results.md + bench/results.json
 *   --quick  bench/out/results.quick.md + .json (smaller sizes, fewer runs, a subset of the accuracy
 *            table, the slowest benches skipped, and a 2-minute overall deadline)
 *
 * Convention: a bench writes its figures as JSON to bench/out/<name>.json. This runner renders the
 * JSON of the benches it knows (its `markdown` field when it has one), parses the target marks of the
 * ones that only print (cache, recipe-validate, quantize, …), and puts every bench's stdout verbatim in
 * a fenced block.
 *
 *   npm run bench [-- --quick] [--only a,b] [--skip a,b] [--no-build] [--out file.md]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAverage, machineInfo, type MachineInfo } from './lib/machine.js';
import { fmtBytes, fmtMiB, fmtMs, fmtRatio, markdownTable, mark, summarize, type Stat } from './lib/stats.js';

const BENCH = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH, '..');
const OUT = path.join(BENCH, 'out');

const argv = process.argv.slice(2);
const QUICK = argv.includes('--quick');
const opt = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const ONLY = opt('--only')?.split(',');
const SKIP = opt('--skip')?.split(',') ?? [];
/** --quick: every bench must end by then (from the start of this runner). */
const QUICK_DEADLINE_MS = 115_000;

// ------------------------------------------------------------------------------------------ config

interface Target {
  bench: string;
  what: string;
  target: string;
  value: string;
  floor?: string;
  met: boolean | undefined;
}

interface Section {
  markdown: string;
  targets: Target[];
  /** The markdown already holds what the bench printed: no stdout block. */
  hideStdout?: boolean;
}

interface BenchConfig {
  args?: string[];
  /** 'skip': not run in --quick (say why). */
  quick?: string[] | { skip: string };
  env?: Record<string, string>;
  quickEnv?: Record<string, string>;
  limitS: number;
  quickLimitS?: number;
  /** Render from bench/out/<name>.json (fresh) and/or stdout. */
  render?: (json: any, stdout: string) => Section;
}

const CONFIG: Record<string, BenchConfig> = {
  scaling: { args: ['--deadline-s', '360'], quick: ['--quick', '--deadline-s', '55'], limitS: 720, quickLimitS: 80, render: renderOwn('scaling') },
  build: { args: ['--runs', '3'], quick: { skip: "the user's path on 113 MB and 378 MB models, 3 rounds: ~2–4 min" }, limitS: 600, render: renderOwn('build') },
  accuracy: { quick: ['--quick'], limitS: 300, quickLimitS: 50, render: renderOwn('accuracy') },
  codec: { args: ['--runs', '5'], quick: ['--size-mb', '30', '--runs', '5', '--rss-runs', '5'], limitS: 240, quickLimitS: 40, render: renderCodec },
  eval: { args: ['--runs', '5'], quick: { skip: '10,000 images × 2 models × 3 runs: ~25 s' }, limitS: 150, render: renderEval },
  float16: { args: ['50000000'], quick: ['5000000'], limitS: 90, quickLimitS: 20 },
  cache: { args: ['--runs', '5', '--cold-runs', '3'], quick: { skip: 'cold builds of a 100 MB model: ~2 min' }, limitS: 240, render: renderCache },
  'recipe-validate': { quick: { skip: '9 fresh processes × 20 calls: ~45 s' }, limitS: 120, render: renderRecipeValidate },
  'vite-build': { env: { RUNS: '5' }, quick: { skip: '15 vite builds: ~1 min' }, limitS: 240, render: renderViteBuild },
  simplify: { args: ['--runs', '30'], quick: { skip: '11 models × 3 sessions, the step and its check: ~40 s' }, limitS: 180, render: renderOwn('simplify') },
  quantize: { args: ['--runs', '5'], quick: { skip: '5 modes × 5 processes on a 113 MB model + GPTQ: ~1–2 min' }, limitS: 300, render: renderQuantize },
  'prune-lowrank': { args: ['--runs', '5'], quick: { skip: 'factorizes a BERT-base model: ~1 min' }, limitS: 300, render: renderPruneLowrank },
  distill: { quick: { skip: 'training steps on both fixtures: ~1 min' }, limitS: 300, render: renderDistill },
  search: { quick: { skip: 'precision search on a 102-layer model and both fixtures: ~2–4 min' }, limitS: 600, render: renderOwn('search') },
  static: { args: ['--runs', '2000'], quick: { skip: '7 CLI builds, accuracy on 9,000 images, interleaved latency in onnxruntime-node and -web: ~2 min' }, limitS: 600, render: renderOwn('static') },
  'web-forms': { args: ['--runs', '10'], quick: { skip: '12 CLI builds and the 113 MB model in onnxruntime-web: ~1 min' }, limitS: 300, render: renderOwn('web-forms') },
  zoo: { quick: { skip: '80 CLI builds of 8 real models: ~4–8 min' }, limitS: 1500, render: renderOwn('zoo') },
  'static-zoo': { quick: { skip: '48 CLI builds of 8 real models with calibration, the activation guard and the budget search, interleaved latency in onnxruntime-node and -web: ~15–25 min' }, limitS: 2400, render: renderOwn('static-zoo') },
};
/** Run order: the two required in --quick first, then cheap to expensive. */
const ORDER = ['build', 'scaling', 'accuracy', 'codec', 'float16', 'eval', 'recipe-validate', 'cache', 'simplify', 'quantize', 'static', 'prune-lowrank', 'distill', 'search', 'vite-build', 'web-forms', 'zoo', 'static-zoo'];
const DEFAULT_LIMIT_S = 300;

// ------------------------------------------------------------------------------------------ running

interface BenchRun {
  name: string;
  argv: string[];
  status: 'ok' | 'failed' | 'timed out' | 'skipped';
  reason?: string;
  exitCode?: number | null;
  ms: number;
  limitS: number;
  stdout: string;
  stderrTail: string;
  /** bench/out/<name>.json, when written during this run. */
  json?: unknown;
  section?: Section;
  renderError?: string;
}

/** The bench running now (its own process group): stopped with this runner on Ctrl-C. */
let current: number | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    if (current) {
      try {
        process.kill(-current, 'SIGTERM');
      } catch {
        /* gone */
      }
    }
    process.exit(sig === 'SIGINT' ? 130 : 143);
  });
}

function runBench(name: string, args: string[], env: Record<string, string>, limitMs: number): Promise<Omit<BenchRun, 'name' | 'limitS'>> {
  const cmd = [process.execPath, '--import', 'tsx', path.join(BENCH, `${name}.ts`), ...args];
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd[0], cmd.slice(1), { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    current = child.pid;
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      if (stderr.length > 200_000) stderr = stderr.slice(-100_000);
      for (const line of c.split('\n')) if (line.trim()) process.stderr.write(`    ${name}: ${line.slice(0, 200)}\n`);
    });
    let timedOut = false;
    const kill = (sig: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, sig); // the bench and its own children
      } catch {
        /* gone */
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      kill('SIGTERM');
      setTimeout(() => kill('SIGKILL'), 5000).unref();
    }, limitMs);
    const done = (exitCode: number | null, error?: string) => {
      clearTimeout(timer);
      current = undefined;
      const ms = performance.now() - t0;
      const status = timedOut ? 'timed out' : exitCode === 0 ? 'ok' : 'failed';
      resolve({ argv: cmd.slice(2), status, exitCode, ms, stdout, stderrTail: stderr.split('\n').slice(-25).join('\n').trim(), ...(error && { reason: error }) });
    };
    child.on('error', (e) => done(null, e.message));
    child.on('close', (code) => done(code));
  });
}

function freshJson(name: string, since: number): unknown {
  const file = path.join(OUT, `${name}.json`);
  try {
    if (statSync(file).mtimeMs < since) return undefined;
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

/** `npm run build` when dist/ is missing or older than src/ (vite-build and cache use dist/). */
async function buildDist(): Promise<string> {
  const marker = path.join(ROOT, 'dist', 'plugin', 'vite.js');
  const newest = (dir: string): number =>
    readdirSync(dir, { withFileTypes: true }).reduce((m, e) => Math.max(m, e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs), 0);
  const distTime = existsSync(marker) ? statSync(marker).mtimeMs : 0;
  if (distTime >= newest(path.join(ROOT, 'src'))) return 'dist/ is up to date';
  const t0 = performance.now();
  const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const c = spawn(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => resolve({ code, out }));
    c.on('error', (e) => resolve({ code: null, out: e.message }));
  });
  const took = fmtMs(performance.now() - t0);
  return r.code === 0 ? `dist/ rebuilt (tsc -p tsconfig.build.json, ${took})` : `dist/ rebuild reported errors (exit ${r.code}, ${took}); files were still emitted where tsc could: ${r.out.split('\n')[0]}`;
}

// ------------------------------------------------------------------------------------------ rendering

const fence = (text: string) => {
  const t = text.replace(/\x1b\[[0-9;]*m/g, '').trimEnd();
  const ticks = /```/.test(t) ? '````' : '```';
  return `${ticks}text\n${t || '(no output)'}\n${ticks}`;
};
const statOf = (s: any): Stat => ({ median: s.median, min: s.min, max: s.max, n: s.runs?.length ?? NaN, runs: s.runs ?? [] });
const rangeMs = (s: Stat) => `${fmtMs(s.median)} (${fmtMs(s.min)}–${fmtMs(s.max)})`;

function needJson(name: string, j: unknown): void {
  if (!j) throw new Error(`no bench/out/${name}.json written by this run`);
}

/** scaling.ts / accuracy.ts: they write their own markdown and targets. */
function renderOwn(name: string) {
  return (json: any): Section => {
    needJson(name, json);
    if (!json.markdown) throw new Error(`bench/out/${name}.json has no markdown${json.partial ? ' (partial: the run did not finish)' : ''}`);
    return { markdown: json.markdown, targets: (json.targets ?? []).map((t: Omit<Target, 'bench'>) => ({ bench: name, ...t })), hideStdout: true };
  };
}

function renderCodec(j: any): Section {
  needJson('codec', j);
  const rows: string[][] = [];
  const targets: Target[] = [];
  const add = (what: string, value: string, floor: string, target: string, met: boolean | undefined) => {
    rows.push([what, value, floor, target, target ? mark(met) : '']);
    if (target) targets.push({ bench: 'codec', what, target, value, floor: floor || undefined, met });
  };
  const size = j.sizeBytes as number;
  const dec = statOf(j.decode);
  add(`decode ${fmtBytes(size)} (bytes in memory)`, rangeMs(dec), '', '≤ 50 ms (380 MB)', dec.median <= 50);
  const rp = statOf(j.roundTrip.repack);
  const cf = statOf(j.roundTrip.copyFileSync);
  const rw = statOf(j.roundTrip.readWrite);
  add('readModel → writeModel', rangeMs(rp), `copyFileSync ${rangeMs(cf)}; read+write ${rangeMs(rw)}`, '≤ 1.5× file copy', rp.median / cf.median <= 1.5);
  rows.push(['  ratio to copyFileSync / to read+write', `${fmtRatio(rp.median / cf.median)} / ${fmtRatio(rp.median / rw.median)}`, '', '', '']);
  if (j.rss) {
    const rep = statOf(j.rss.repack.rss);
    const copy = statOf(j.rss.copy.rss);
    const limit = j.rss.fileBytes + 64 * 2 ** 20;
    add('peak RSS, child readModel → writeModel', `${fmtMiB(rep.median)} (${fmtMiB(rep.min)}–${fmtMiB(rep.max)})`, `plain copy child ${fmtMiB(copy.median)}; node -e 0 ${fmtMiB(j.rss.bare.rss.median)}`, `≤ file + 64 MiB (${fmtMiB(limit)})`, rep.median <= limit);
  }
  const wd = statOf(j.wide.decode);
  add('decode 100k-node graph', rangeMs(wd), `first run ${fmtMs(j.wide.firstDecodeMs)}; GC ${fmtMs(j.wide.decode.gc?.median)}`, '≤ 500 ms', wd.median <= 500);
  const runs = j.decode.runs?.length;
  return {
    markdown: `Model: transformerStack, ${j.layers} layers, ${fmtBytes(size)}; ${runs} timed runs after a warm-up (RSS: 5 child processes under ${j.rss?.measuredBy ?? '?'}).\n\n${markdownTable(['measurement', 'median (min–max)', 'floor (same run)', 'target', 'result'], rows)}`,
    targets,
  };
}

function renderEval(j: any): Section {
  needJson('eval', j);
  const ev = summarize(j.evalMs);
  const fl = summarize(j.floorMs);
  const r = j.report;
  const met = ev.median <= 15_000;
  const rows = [
    [`evaluateModels, ${r.samples} images, original + compressed`, rangeMs(ev), `fp32 ORT inference, once, batch ${j.batch}: ${rangeMs(fl)} (ratio ${fmtRatio(ev.median / fl.median)})`, '≤ 15 s', mark(met)],
    ['accuracy original / compressed', `${r.original.accuracy} / ${r.compressed.accuracy}`, '', '', ''],
    ['single-sample latency median, original / compressed', `${fmtMs(r.original.latencyMs.median)} / ${fmtMs(r.compressed.latencyMs.median)}`, '', '', ''],
  ];
  return {
    markdown: `${j.runs} runs, ${j.threads} thread(s), device ${j.device}.\n\n${markdownTable(['measurement', 'median (min–max)', 'floor (same run)', 'target', 'result'], rows)}`,
    targets: [{ bench: 'eval', what: `evaluate ${r.samples} images (2 models)`, target: '≤ 15 s', value: rangeMs(ev), floor: `fp32 inference ${fmtMs(fl.median)}`, met }],
  };
}

function renderViteBuild(j: any): Section {
  needJson('vite-build', j);
  const t = j.times as Record<string, { ms: number; cpuMs: number }[]>;
  const s = (m: string, k: 'ms' | 'cpuMs') => summarize(t[m].map((x) => x[k]));
  const floor = s('floor', 'ms');
  const rows: string[][] = [];
  for (const m of ['floor', 'warm', 'cold']) {
    if (!t[m]) continue;
    const w = s(m, 'ms');
    const c = s(m, 'cpuMs');
    rows.push([m === 'floor' ? 'floor: vite build without the plugin' : `plugin, ${m} cache`, rangeMs(w), m === 'floor' ? '' : `${fmtMs(w.median - floor.median)}`, rangeMs(c), m === 'warm' ? '≤ 300 ms added' : '', m === 'warm' ? mark(w.median - floor.median <= j.targetMs) : '']);
  }
  const warm = s('warm', 'ms');
  const added = warm.median - floor.median;
  const cpuAdded = s('warm', 'cpuMs').median - s('floor', 'cpuMs').median;
  return {
    markdown: `${j.runs} rounds (floor, warm, cold interleaved), fresh process per build. CPU time is the steadier figure on a shared machine: warm adds ${fmtMs(cpuAdded)} of CPU.\n\n${markdownTable(['build', 'wall median (min–max)', 'added wall (median − floor)', 'CPU median (min–max)', 'target', 'result'], rows)}`,
    targets: [{ bench: 'vite-build', what: 'vite warm build overhead', target: '≤ 300 ms', value: `${fmtMs(added)} wall (${fmtMs(cpuAdded)} CPU)`, floor: `build without plugin ${fmtMs(floor.median)}`, met: added <= j.targetMs }],
  };
}

/** cache.ts prints `label  median X ms  cpu Y ms  [runs]  note`. */
function renderCache(_j: unknown, stdout: string): Section {
  const targets: Target[] = [];
  const m = /compressBuild hit, first call in a fresh process\s+median\s+([\d.]+) ms.*?\[([\d, ]+)\]/.exec(stdout);
  if (m) {
    const runs = m[2].split(',').map(Number);
    const s = summarize(runs);
    targets.push({ bench: 'cache', what: 'cache hit, 100 MB model (first call in a fresh process)', target: '≤ 150 ms', value: `${fmtMs(Number(m[1]))} (${fmtMs(s.min)}–${fmtMs(s.max)})`, met: Number(m[1]) <= 150 });
  }
  return { markdown: fence(stdout), targets, hideStdout: true };
}

function renderRecipeValidate(_j: unknown, stdout: string): Section {
  const m = /(ok|FAIL): slowest call ([\d.]+) ms of CPU/.exec(stdout);
  return {
    markdown: fence(stdout),
    hideStdout: true,
    targets: m ? [{ bench: 'recipe-validate', what: 'validate a 50-model recipe (slowest call, CPU)', target: '≤ 300 ms', value: `${m[2]} ms CPU`, met: m[1] === 'ok' }] : [],
  };
}

/**
 * A bench's stdout that already holds Markdown tables: table lines kept as they are, other lines as
 * paragraphs; box-drawing (console.table) output fenced.
 */
function stdoutAsMarkdown(stdout: string): string {
  if (/[┌│└]/.test(stdout)) return fence(stdout);
  const out: string[] = [];
  let inTable = false;
  for (const raw of stdout.replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
    const line = raw.trimEnd();
    const table = line.trimStart().startsWith('|');
    if (table !== inTable && out.length && out[out.length - 1] !== '') out.push('');
    inTable = table;
    if (!line.trim()) {
      if (out.length && out[out.length - 1] !== '') out.push('');
      continue;
    }
    out.push(table ? line.trim() : line.trim());
    if (!table) out.push('');
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trim();
}

/** quantize.ts prints one Markdown table with " ok" / " FAIL" after each checked cell. */
function renderQuantize(_j: unknown, stdout: string): Section {
  return { markdown: stdoutAsMarkdown(stdout), targets: parseMarks('quantize', stdout), hideStdout: true };
}

function renderPruneLowrank(j: any, stdout: string): Section {
  needJson('prune-lowrank', j);
  const full = j.layers === 12;
  const lr = j.lowrank;
  const pr = j.prune;
  const prs = summarize(pr.runs ?? [pr.ms]);
  const targets: Target[] = [
    { bench: 'prune-lowrank', what: `factorize BERT-base (${j.layers} layers) rank ${lr.rank}`, target: '≤ 60 s', value: `${fmtMs(lr.ms)} (1 run; CPU ${fmtMs(lr.cpuMs)})`, floor: `one W·Ω product per weight ${fmtMs(lr.floorMs)}`, met: full ? lr.ms <= lr.targetMs : undefined },
    { bench: 'prune-lowrank', what: `magnitude prune 50 %, BERT-base (${j.weights} weights)`, target: '≤ 3 s', value: `${fmtMs(prs.median)} (${fmtMs(prs.min)}–${fmtMs(prs.max)}), n=${prs.n}`, floor: `one pass over the weights ${fmtMs(pr.floorMs)}`, met: full ? pr.ms <= pr.targetMs : undefined },
  ];
  return { markdown: stdoutAsMarkdown(stdout), targets, hideStdout: true };
}

/** distill.ts: training throughput next to its floor (forward-only inference) in its own table; no target. */
function renderDistill(_j: unknown, stdout: string): Section {
  return { markdown: stdoutAsMarkdown(stdout), targets: parseMarks('distill', stdout), hideStdout: true };
}

/** Target marks in any Markdown table a bench prints: cells ending in ok / FAIL / MISSED / OVER / met. */
function parseMarks(bench: string, stdout: string): Target[] {
  const out: Target[] = [];
  let header: string[] | undefined;
  for (const line of stdout.split('\n')) {
    if (!line.trim().startsWith('|')) {
      header = undefined;
      continue;
    }
    const cells = line.trim().replace(/^\||\|$/g, '').split('|').map((c) => c.trim());
    if (!header) {
      header = cells;
      continue;
    }
    if (cells.every((c) => /^:?-+:?$/.test(c))) continue;
    cells.forEach((c, i) => {
      const mk = /(?:^|\s)(ok|FAIL|MISSED|OVER|met|\*\*missed\*\*)$/.exec(c);
      if (!mk || i === 0) return;
      const ok = mk[1] === 'ok' || mk[1] === 'met';
      out.push({ bench, what: `${cells[0]} — ${header![i] ?? `column ${i + 1}`}`, target: targetText(header![i] ?? '', cells[0]), value: c.slice(0, mk.index).trim(), met: ok });
    });
  }
  return out;
}

/** The issue's target for a quantize column, from the column and row names. */
function targetText(column: string, row: string): string {
  const c = column.toLowerCase();
  const int4 = /int4|4-bit|uint4/i.test(row);
  if (c.includes('wall')) return '≤ 0.8 s whole process';
  if (c.includes('rss')) return '≤ 1.5× input';
  if (c.includes('output') || c.includes('bytes')) return int4 ? '≤ 0.16× input' : '≤ 0.26× input';
  if (c.includes('cos')) return int4 ? '≥ 0.9916' : '≥ 0.99958';
  return '(as printed)';
}

// ------------------------------------------------------------------------------------------ main

/** A bench's command line as a user would type it. */
const shown = (args: string[]) => ['npx tsx', ...args.filter((a) => a !== '--import' && a !== 'tsx').map((a) => (a.startsWith('/') ? path.relative(ROOT, a) : a))].join(' ');

function machineTable(m: MachineInfo, endLoad: string): string {
  return markdownTable(
    ['', ''],
    [
      ['CPU', `${m.cpu}${m.simd.length ? ` (${m.simd.join(', ')})` : ''}`],
      ['cores', `${m.cores} logical (availableParallelism ${m.parallelism})`],
      ['memory', `${fmtBytes(m.memoryBytes)} total, ${fmtBytes(m.freeMemoryBytes)} free at start`],
      ['OS', m.os],
      ['Node', m.node],
      ['onnxruntime-node', m.onnxruntimeNode],
      ['load average (1/5/15 min)', `${m.loadAverage.map((l) => l.toFixed(2)).join(' / ')} at start; ${endLoad} at the end`],
      ['free disk in tmpdir', fmtBytes(m.tmpFreeBytes)],
    ],
  );
}

async function main(): Promise<void> {
  const started = performance.now();
  const startedAt = Date.now();
  const machine = machineInfo();
  const command = `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}`;
  const mdFile = opt('--out') ? path.resolve(opt('--out')!) : QUICK ? path.join(OUT, 'results.quick.md') : path.join(BENCH, 'results.md');
  const jsonFile = mdFile.replace(/\.md$/, '') + '.json';
  console.error(`bench: ${command}; ${machine.cores} cores, load ${loadAverage()}; report → ${path.relative(ROOT, mdFile)}`);

  const found = readdirSync(BENCH)
    .filter((f) => f.endsWith('.ts') && f !== 'run.ts')
    .map((f) => f.slice(0, -3));
  const names = [...ORDER.filter((n) => found.includes(n)), ...found.filter((n) => !ORDER.includes(n)).sort()].filter((n) => (!ONLY || ONLY.includes(n)) && !SKIP.includes(n));
  const missing = ORDER.filter((n) => !found.includes(n));

  let buildNote = 'not needed';
  if (!argv.includes('--no-build') && names.some((n) => n === 'vite-build' || n === 'cache' || n === 'build') && !QUICK) buildNote = await buildDist();

  const runs: BenchRun[] = [];
  for (const name of names) {
    const cfg = CONFIG[name] ?? { limitS: DEFAULT_LIMIT_S };
    const quickCfg = cfg.quick;
    if (QUICK && quickCfg && !Array.isArray(quickCfg)) {
      runs.push({ name, argv: [], status: 'skipped', reason: `skipped in --quick: ${quickCfg.skip}`, ms: 0, limitS: 0, stdout: '', stderrTail: '' });
      continue;
    }
    const args = QUICK ? ((quickCfg as string[] | undefined) ?? cfg.args ?? []) : (cfg.args ?? []);
    let limitS = QUICK ? (cfg.quickLimitS ?? Math.min(cfg.limitS, 60)) : cfg.limitS;
    if (QUICK) {
      const left = (QUICK_DEADLINE_MS - (performance.now() - started)) / 1000;
      if (left < 8) {
        runs.push({ name, argv: args, status: 'skipped', reason: `skipped: the --quick deadline (${QUICK_DEADLINE_MS / 1000} s) was reached`, ms: 0, limitS: 0, stdout: '', stderrTail: '' });
        continue;
      }
      limitS = Math.min(limitS, Math.floor(left));
    }
    const env = { CI: '1', ...(cfg.env ?? {}), ...(QUICK ? (cfg.quickEnv ?? {}) : {}) };
    console.error(`[${((performance.now() - started) / 1000).toFixed(0)} s] ${name} ${args.join(' ')} (limit ${limitS} s, load ${loadAverage()})`);
    const since = Date.now();
    const r = await runBench(name, args, env, limitS * 1000);
    const run: BenchRun = { name, limitS, ...r };
    run.json = freshJson(name, since);
    try {
      if (cfg.render) run.section = cfg.render(run.json, run.stdout);
    } catch (e) {
      run.renderError = (e as Error).message;
    }
    if (!run.section) run.section = { markdown: '', targets: parseMarks(name, run.stdout) };
    runs.push(run);
    console.error(`[${((performance.now() - started) / 1000).toFixed(0)} s] ${name}: ${run.status} in ${fmtMs(run.ms)}${run.renderError ? ` (render: ${run.renderError})` : ''}`);
  }

  // ------------------------------------------------------------------ report
  const elapsedMs = performance.now() - started;
  const endLoad = loadAverage();
  const targets = runs.flatMap((r) => r.section?.targets ?? []);
  const md: string[] = [];
  md.push(
    `# Benchmarks${QUICK ? ' (--quick)' : ''}`,
    '',
    `Command: \`${command}\` — ${new Date(startedAt).toISOString()} — total ${fmtMs(elapsedMs)}.`,
    '',
    machineTable(machine, endLoad),
    '',
    'A shared 2-core machine: wall times move ±20–50 % with the other work on it (see the load average). Figures are medians over the runs shown, with min–max; ' +
      'each timing sits next to its floor measured in the same run (a plain copy/read of the same bytes for I/O-bound steps, fp32 ORT inference for evaluation).',
    '',
  );
  if (QUICK) md.push(`**--quick**: models of 10 and 100 MB only, 3 runs (fewer where an operation is slow), 300 e-mails / 1,000 images and 5 of the 7 recipes for accuracy; benches that cannot fit the ${QUICK_DEADLINE_MS / 1000} s deadline are skipped (listed below).`, '');

  md.push('## Summary', '');
  md.push(
    markdownTable(
      ['bench', 'status', 'time', 'limit', 'command'],
      runs.map((r) => [r.name, r.status === 'ok' ? 'ok' : `**${r.status}**${r.reason ? `: ${r.reason}` : r.exitCode !== undefined && r.exitCode !== 0 && r.exitCode !== null ? ` (exit ${r.exitCode})` : ''}`, r.status === 'skipped' ? '' : fmtMs(r.ms), r.limitS ? `${r.limitS} s` : '', r.status === 'skipped' ? '' : `\`${shown(r.argv)}\``]),
    ),
    '',
  );
  if (missing.length) md.push(`Not in bench/ when this ran: ${missing.map((m) => `\`${m}.ts\``).join(', ')}.`, '');
  if (!QUICK) md.push(`Build: ${buildNote}.`, '');

  md.push('## Targets', '');
  if (targets.length) {
    const met = targets.filter((t) => t.met === true).length;
    const missed = targets.filter((t) => t.met === false).length;
    md.push(`${met} met, ${missed} missed${targets.length - met - missed ? `, ${targets.length - met - missed} not measurable` : ''}.`, '');
    md.push(markdownTable(['bench', 'measurement', 'target', 'measured', 'floor', 'result'], targets.map((t) => [t.bench, t.what, t.target, t.value, t.floor ?? '', mark(t.met)])), '');
  } else md.push('No target could be read from this run.', '');

  for (const r of runs) {
    md.push(`## ${r.name}`, '');
    if (r.status === 'skipped') {
      md.push(`${r.reason}.`, '');
      continue;
    }
    md.push(`\`${shown(r.argv)}\` — ${r.status} in ${fmtMs(r.ms)} (limit ${r.limitS} s).`, '');
    if (r.status !== 'ok') md.push(`**${r.status}**${r.exitCode !== undefined && r.exitCode !== null ? ` (exit ${r.exitCode})` : ''}; last lines of stderr:`, '', fence(r.stderrTail), '');
    if (r.renderError) md.push(`(Could not render bench/out/${r.name}.json: ${r.renderError}.)`, '');
    const rendered = r.section?.markdown ?? '';
    if (rendered) md.push(rendered, '');
    if (!r.section?.hideStdout) {
      if (rendered) md.push('<details><summary>stdout</summary>', '', fence(r.stdout), '', '</details>', '');
      else md.push(fence(r.stdout), '');
    }
  }

  // elapsed of this run and of the latest other-mode run
  const other = QUICK ? path.join(BENCH, 'results.json') : path.join(OUT, 'results.quick.json');
  let otherLine = '';
  try {
    const o = JSON.parse(readFileSync(other, 'utf8')) as { elapsedMs: number; date: string; command: string };
    otherLine = ` Latest \`${o.command}\`: ${fmtMs(o.elapsedMs)} (${o.date}).`;
  } catch {
    /* none yet */
  }
  const budget = QUICK ? 120_000 : 15 * 60_000;
  md.push('## Elapsed', '', `This run (\`${command}\`): **${fmtMs(elapsedMs)}** (budget ${QUICK ? '2 min' : '15 min'}: ${elapsedMs <= budget ? 'within' : '**over**'}); load average at the end ${endLoad}.${otherLine}`, '');

  mkdirSync(path.dirname(mdFile), { recursive: true });
  writeFileSync(mdFile, md.join('\n'));
  writeFileSync(
    jsonFile,
    JSON.stringify(
      {
        command,
        quick: QUICK,
        date: new Date(startedAt).toISOString(),
        elapsedMs,
        machine,
        loadAverageEnd: endLoad,
        build: buildNote,
        targets,
        benches: runs.map((r) => ({ name: r.name, argv: r.argv, status: r.status, reason: r.reason, exitCode: r.exitCode, ms: r.ms, limitS: r.limitS, json: r.json, stdout: r.stdout, stderrTail: r.stderrTail, renderError: r.renderError })),
      },
      null,
      2,
    ) + '\n',
  );
  console.error(`bench: ${runs.filter((r) => r.status === 'ok').length}/${runs.length} ok, ${targets.filter((t) => t.met === false).length} target(s) missed; ${fmtMs(elapsedMs)}; wrote ${path.relative(ROOT, mdFile)} and ${path.relative(ROOT, jsonFile)}`);
}

await main();
