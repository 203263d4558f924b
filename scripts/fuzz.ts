/**
 * Whole-build fuzzing (beyond test/fuzz.test.ts, which fuzzes the decoder alone):
 *
 *   npm run fuzz -- [--cases N] [--seed S] [--timeout-ms T] [--models a.onnx,b.onnx] [--out dir] [--keep]
 *   npm run fuzz -- --batch 50 --cases 10000 [--cli path/to/cli.js] [...]   (mutants only, many per process: scripts/fuzz-batch.ts)
 *   npm run fuzz -- --corpus [--class name] [--limit-ms 5000] [--rss-mb 1024] [--compare other/cli.js]   (the bad-recipe / bad-data corpus: scripts/fuzz-corpus.ts)
 *
 * Each case is either a field-aware mutant of a real model (input dims, element types, raw_data
 * lengths, attributes, op types, graph outputs, external-data entries, subgraphs, random bytes) built
 * with a small recipe, or a case of the bad-recipe / bad-data corpus. Every case runs the real command
 * (`node dist/cli.js build`, so run `npm run build` first) in its own process with a time limit, and is
 * classified:
 *   ok       exit 0, 1 or 2 with a one-line message that names a place (a file, byte offset or sample)
 *   finding  a signal (native crash), a timeout, exit 70 / another code, "internal error", a stack trace
 *            without --debug, or an error message with no location
 * Findings are copied (recipe, model, data, stderr) to <out>/findings/<case>/ so each can become a
 * regression test; a summary goes to <out>/summary.json. Deterministic for a given seed.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { seededRandom } from '../src/random.js';
import { batchDefaults, runBatched } from './fuzz-batch.js';
import { runCorpus } from './fuzz-corpus.js';
import { classifyMessage, defaultModels, mutate, pick, stepsBlock, type Rand } from './fuzz-mutate.js';

export interface Args {
  cases: number;
  seed: number;
  timeoutMs: number;
  models: string[];
  out: string;
  keep: boolean;
  /** Mutants per build process (batched mode), 0 for one case per process. */
  batch: number;
  isolateMs: number;
  cli?: string;
  /** Run the bad-recipe / bad-data corpus (scripts/fuzz-corpus.ts) instead. */
  corpus: boolean;
  only?: string;
  /** Corpus: another CLI (an older build) run on every case too, alternately, for before → after figures. */
  compare?: string;
  limitMs: number;
  rssMb: number;
}

export function parse(argv: string[]): Args {
  const a: Args = {
    cases: 100,
    seed: 1,
    timeoutMs: 30_000,
    models: ['test/fixtures/fmnist-cnn/model.onnx', 'test/fixtures/spam-tinybert/model.onnx', 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx'],
    out: 'bench/out/fuzz',
    keep: false,
    batch: 0,
    isolateMs: batchDefaults().isolateMs,
    corpus: false,
    limitMs: 5000,
    rssMb: 1024,
  };
  let models = false;
  for (let i = 0; i < argv.length; i++) {
    const v = () => argv[++i];
    switch (argv[i]) {
      case '--cases': a.cases = Number(v()); break;
      case '--seed': a.seed = Number(v()); break;
      case '--timeout-ms': a.timeoutMs = Number(v()); break;
      case '--models': a.models = v().split(','); models = true; break;
      case '--batch': a.batch = Number(v()); break;
      case '--isolate-ms': a.isolateMs = Number(v()); break;
      case '--cli': a.cli = v(); break;
      case '--corpus': a.corpus = true; break;
      case '--class': a.only = v(); break;
      case '--compare': a.compare = v(); break;
      case '--limit-ms': a.limitMs = Number(v()); break;
      case '--rss-mb': a.rssMb = Number(v()); break;
      case '--out': a.out = v(); break;
      case '--keep': a.keep = true; break;
      default: throw new Error(`unknown option ${argv[i]}`);
    }
  }
  // Batched runs default to every real model the repository has (and the operator models with subgraphs).
  if (a.batch && !models) a.models = defaultModels();
  a.models = a.models.map((m) => path.resolve(m)).filter((m) => existsSync(m));
  if (!a.models.length) throw new Error('no model found: pass --models');
  return a;
}

/** Bad recipes and data, each a project: files written into the case folder. */
function corpusCase(r: Rand, model: string): { recipe: string; files: Record<string, string>; what: string } {
  const src = `source: ${JSON.stringify(path.basename(model))}`;
  const cases: (() => { recipe: string; files?: Record<string, string>; what: string })[] = [
    () => ({ what: 'unknown keys', recipe: `models:\n  m:\n    ${src}\n${Array.from({ length: 500 }, (_, i) => `    k${i}: 1`).join('\n')}\n` }),
    () => ({ what: 'billion laughs', recipe: `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\nmodels:\n  m:\n    ${src}\n    output: *d\n` }),
    () => ({ what: 'deep flow nesting', recipe: `models: ${'['.repeat(5000)}${']'.repeat(5000)}\n` }),
    () => ({ what: 'huge samples', recipe: `models:\n  m:\n    ${src}\n    calibration: { data: random, samples: 1000000000 }\n    quantize: { dtype: int8 }\n` }),
    () => ({ what: 'huge runs', recipe: `models:\n  m:\n    ${src}\n    evaluate: { data: random, runs: 1000000000 }\n` }),
    () => ({ what: 'NUL output', recipe: `models:\n  m:\n    ${src}\n    output: "a\\0b.onnx"\n` }),
    () => ({ what: 'output over source', recipe: `models:\n  m:\n    ${src}\n    output: ../${path.basename(model)}\n` }),
    () => ({ what: 'manifest collision', recipe: `models:\n  a:\n    ${src}\n    output: b.manifest.json\n  b:\n    ${src}\n` }),
    () => ({ what: 'missing source', recipe: `models:\n  m:\n    source: nope.onnx\n` }),
    () => ({ what: 'throw null module', recipe: `models:\n  m:\n    ${src}\n    evaluate: { data: d.mjs }\n`, files: { 'd.mjs': 'export default function () { throw null; }' } }),
    () => ({ what: 'exit(0) module', recipe: `models:\n  m:\n    ${src}\n    evaluate: { data: d.mjs }\n`, files: { 'd.mjs': 'process.exit(0);' } }),
    () => ({ what: 'never-settling module', recipe: `models:\n  m:\n    ${src}\n    evaluate: { data: d.mjs }\n`, files: { 'd.mjs': 'export default () => new Promise(() => {});' } }),
    () => ({ what: 'deep JSONL', recipe: `models:\n  m:\n    ${src}\n    evaluate: { data: d.jsonl }\n`, files: { 'd.jsonl': `{"inputs": {"x": ${'['.repeat(10000)}1${']'.repeat(10000)}}}\n` } }),
    () => ({ what: 'malformed npz', recipe: `models:\n  m:\n    ${src}\n    evaluate: { data: d.npz }\n`, files: { 'd.npz': 'PK\u0005\u0006' + '\u0000'.repeat(18) } }),
    () => ({ what: 'malformed npy', recipe: `models:\n  m:\n    ${src}\n    evaluate: { data: d.npy }\n`, files: { 'd.npy': '\u0093NUMPY\u0001\u0000\u0010\u0000{"descr": "<f4"' } }),
  ];
  const c = pick(r, cases)();
  return { recipe: c.recipe, files: c.files ?? {}, what: c.what };
}

interface Outcome {
  case: number;
  kind: 'mutant' | 'corpus';
  what: string;
  model: string;
  status: number | null;
  signal: string | null;
  ms: number;
  message: string;
  finding?: string;
}

function classify(o: Outcome, stderr: string, timeoutMs: number): string | undefined {
  if (o.signal) return o.ms >= timeoutMs ? `timeout (${o.signal})` : `killed by ${o.signal}`;
  if (o.status === null || ![0, 1, 2].includes(o.status)) return `exit ${o.status}`;
  if (/internal error/.test(stderr)) return 'internal error';
  if (/\n\s+at .+:\d+:\d+\)?\n/.test(stderr)) return 'stack trace without --debug';
  return classifyMessage(o.status, o.message);
  return undefined;
}

export interface Summary {
  seed: number;
  cases: number;
  byExit: Record<string, number>;
  findings: number;
  slowestMs: number;
  outcomes: Outcome[];
}

/** Runs `a.cases` cases; writes findings and summary.json under `a.out`; returns the summary. */
export function runFuzz(a: Args, log: (line: string) => void = console.log): Summary {
  const cli = path.resolve('dist/cli.js');
  if (!existsSync(cli)) throw new Error('dist/cli.js is missing: run `npm run build` first');
  mkdirSync(path.join(a.out, 'findings'), { recursive: true });
  const r = seededRandom(a.seed);
  const sources = new Map(a.models.map((m) => [m, readFileSync(m)]));
  const outcomes: Outcome[] = [];
  for (let c = 0; c < a.cases; c++) {
    const dir = mkdtempSync(path.join(tmpdir(), 'fuzz-'));
    const model = pick(r, a.models);
    const name = path.basename(model);
    let what: string;
    let kind: Outcome['kind'];
    if (r() < 0.8) {
      kind = 'mutant';
      const mutant = mutate(sources.get(model)!, model, r);
      writeFileSync(path.join(dir, name), mutant.bytes);
      writeFileSync(path.join(dir, 'compress.yaml'), `defaults:\n  device: cpu\nmodels:\n  m:\n    source: ${JSON.stringify(name)}\n${stepsBlock(r)}`);
      what = mutant.what;
    } else {
      kind = 'corpus';
      copyFileSync(model, path.join(dir, name));
      const k = corpusCase(r, model);
      writeFileSync(path.join(dir, 'compress.yaml'), k.recipe);
      for (const [f, text] of Object.entries(k.files)) writeFileSync(path.join(dir, f), text);
      what = k.what;
    }
    const t0 = performance.now();
    const p = spawnSync(process.execPath, [cli, 'build', '--out', 'dist', '--no-cache', '--quiet'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: a.timeoutMs,
      killSignal: 'SIGKILL',
    });
    const o: Outcome = {
      case: c,
      kind,
      what,
      model: name,
      status: p.status,
      signal: p.signal,
      ms: Math.round(performance.now() - t0),
      message: (p.stderr ?? '').split('\n').find((l) => l.startsWith('onnx-compress:')) ?? '',
    };
    o.finding = classify(o, p.stderr ?? '', a.timeoutMs);
    outcomes.push(o);
    if (o.finding) {
      const keep = path.join(a.out, 'findings', String(c));
      cpSync(dir, keep, { recursive: true });
      writeFileSync(path.join(keep, 'stderr.txt'), p.stderr ?? '');
      log(`case ${c}: FINDING ${o.finding} — ${kind} ${name}: ${what}`);
    }
    if (!a.keep) rmSync(dir, { recursive: true, force: true });
  }
  const findings = outcomes.filter((o) => o.finding);
  const summary: Summary = {
    seed: a.seed,
    cases: outcomes.length,
    byExit: Object.fromEntries([0, 1, 2].map((s) => [s, outcomes.filter((o) => o.status === s && !o.signal).length])),
    findings: findings.length,
    slowestMs: Math.max(...outcomes.map((o) => o.ms)),
    outcomes,
  };
  writeFileSync(path.join(a.out, 'summary.json'), JSON.stringify(summary, null, 2));
  log(`${outcomes.length} cases (seed ${a.seed}): exit 0/1/2 = ${summary.byExit[0]}/${summary.byExit[1]}/${summary.byExit[2]}, ${findings.length} findings, slowest ${summary.slowestMs} ms; ${path.join(a.out, 'summary.json')}`);
  return summary;
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const a = parse(process.argv.slice(2));
  const findings = a.corpus
    ? runCorpus({ cli: a.cli ?? 'dist/cli.js', limitMs: a.limitMs, rssMb: a.rssMb, out: a.out === 'bench/out/fuzz' ? 'bench/out/corpus' : a.out, ...(a.only && { only: a.only }), ...(a.compare && { compare: a.compare }) }).findings
    : a.batch
    ? runBatched({ cases: a.cases, batch: a.batch, seed: a.seed, timeoutMs: a.timeoutMs, isolateMs: a.isolateMs, models: a.models, out: a.out === 'bench/out/fuzz' ? batchDefaults().out : a.out, ...(a.cli && { cli: a.cli }) }).findings.length
    : runFuzz(a).findings;
  process.exitCode = findings ? 1 : 0;
}
