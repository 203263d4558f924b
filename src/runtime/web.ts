/**
 * onnxruntime-web's wasm backend, run from Node: what a browser without WebGPU runs the model with.
 *
 * - `runWeb` / `webLatency` / `prewarmWeb`: in a pooled child process (src/runtime/web-child.ts). wasm
 *   cannot abort the process natively, but a model can make it hang or allocate up to wasm's 4 GiB: the
 *   child runs under the same time and memory limits as the onnxruntime-node isolation child
 *   (src/runtime/isolate.ts, `probeLimits`), is killed past them, and its memory never counts against the
 *   build's. Starting a child and initializing the wasm runtime costs 0.5–1 s, so the pipeline starts one
 *   (`prewarmWeb`) while the steps run, and children are reused.
 * - A check loads a model and runs it once: V8's optimizing tier (TurboFan) would recompile the hot wasm
 *   functions on a background thread for runs that never come. Its children run wasm on the baseline
 *   compiler only (`--liftoff-only`: measured 0.50 → 0.14 s CPU for loading and running a 0.36 MB int8
 *   transformer, 1.6 → 1.0 s for 28 MB of int8 weights). Latency is timed in children with V8's default
 *   tiering, as in a browser.
 * - src/runtime/web-compat.ts compares the outputs with onnxruntime-node's and names what fails.
 *
 * Threads: `numThreads = 1`, what a page gets without cross-origin isolation (no COOP/COEP headers →
 * no SharedArrayBuffer → onnxruntime-web runs single-threaded; it is most pages' default). Session
 * options are onnxruntime-web's defaults (graph optimization `all`, the wasm CPU provider with SIMD).
 *
 * Which onnxruntime-web: the one the project that builds resolves (`from`, the recipe's folder), the
 * version its app ships; else the one this package resolves. None found: the caller says so.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CompressError } from '../errors.js';
import { humanSize } from '../limits.js';
import { childEntry, childEnv, keepAlive, residentBytes } from './child.js';
import { probeLimits } from './isolate.js';

/** A tensor as it crosses the process boundary (structured clone keeps typed arrays). */
export interface WireTensor {
  type: string;
  dims: readonly number[];
  data: unknown;
}
export type WireFeeds = Record<string, WireTensor>;

/** onnxruntime-web's threads in every session here (see the file comment). */
export const WEB_THREADS = 1;

export interface OrtWebInfo {
  /** The package's CommonJS entry for Node (dist/ort.node.min.js). */
  entry: string;
  version: string;
}

/** The onnxruntime-web `from` (a folder) resolves, else the one this package resolves; undefined when neither. */
export function resolveOrtWeb(from?: string): OrtWebInfo | undefined {
  const bases = [...(from ? [path.join(from, 'package.json')] : []), fileURLToPath(import.meta.url)];
  for (const base of bases) {
    try {
      const req = createRequire(base);
      const entry = req.resolve('onnxruntime-web');
      // entry: <pkg>/dist/ort.node.min.js
      const pkg = JSON.parse(readFileSync(path.join(path.dirname(entry), '..', 'package.json'), 'utf8')) as { version?: string };
      return { entry, version: pkg.version ?? 'unknown' };
    } catch {
      // not resolvable from there
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The child pool

/** What the child answers (see web-child.ts). */
export type WebRunReply =
  | { ok: true; outputs: Record<string, WireTensor>; loadMs: number; runMs: number; accuracyLevelNodes: number }
  | { ok: false; stage: 'load' | 'run'; message: string; op?: string; domain?: string; nodes?: string[] };

export type WebLatencyReply =
  | { ok: true; warmup: number; original?: number[]; originalError?: string; compressed: number[] }
  | { ok: false; stage: 'load' | 'run'; message: string; op?: string; domain?: string; nodes?: string[] };

/** A child runs checks (baseline wasm compiler only) or times models (V8's default tiering). */
type Purpose = 'check' | 'latency';

interface Child {
  proc: ChildProcess;
  entry: string;
  purpose: Purpose;
  /** Resolves once the wasm runtime is initialized (or rejects). */
  ready: Promise<void>;
}

const idle: Child[] = [];
let nextId = 1;

const setRef = (c: Child, on: boolean) => keepAlive(c.proc, on);

interface Limits {
  timeoutMs: number;
  memoryBytes: number;
  /** What the request is for, in messages ("the web check"). */
  phase: string;
}

/** Sends one request and waits for its reply under `limits`; the child is killed past them. */
function request<T>(c: Child, message: Record<string, unknown>, limits: Limits): Promise<T> {
  const id = nextId++;
  setRef(c, true);
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(watch);
      c.proc.off('message', onMessage);
      c.proc.off('exit', onExit);
      setRef(c, false);
      f();
    };
    const kill = (why: string) => {
      c.proc.kill('SIGKILL');
      finish(() => reject(new CompressError('runtime', `onnxruntime-web ${why} (during ${limits.phase})`)));
    };
    const timer = setTimeout(
      () => kill(`timed out after ${Math.round(limits.timeoutMs / 1000)} s; the limit grows with the model's size (set ONNX_COMPRESS_LIMIT_ISOLATE_MS to change the base)`),
      limits.timeoutMs,
    );
    const watch = setInterval(() => {
      const rss = residentBytes(c.proc.pid!);
      if (rss !== undefined && rss > limits.memoryBytes) kill(`used more than ${humanSize(limits.memoryBytes)} of memory (set ONNX_COMPRESS_LIMIT_ISOLATE_MEMORY_BYTES to change the base)`);
    }, 100);
    watch.unref();
    const onMessage = (m: { id: number } & T) => {
      if (m.id === id) finish(() => resolve(m));
    };
    const onExit = (code: number | null, signal: string | null) =>
      finish(() => reject(new CompressError('runtime', `onnxruntime-web's process ended (during ${limits.phase}): ${signal ? `killed by ${signal}` : `exit code ${code}`}`)));
    c.proc.on('message', onMessage);
    c.proc.on('exit', onExit);
    c.proc.send({ id, ...message }, (err) => {
      if (err) finish(() => reject(new CompressError('runtime', `cannot reach onnxruntime-web's process: ${err.message}`)));
    });
  });
}

/**
 * V8 flags of a check child. `--single-threaded`: no V8 background threads (concurrent compilation and
 * GC) for one load and one run — measured 1.1–1.6 → 0.84–1.15 s of CPU for starting onnxruntime-web,
 * the same wall time; on a machine whose cores run the build and verification at the same time, that CPU
 * is what the web check costs the build.
 */
const CHECK_FLAGS = ['--liftoff-only', '--single-threaded'];

function spawn(ort: OrtWebInfo, purpose: Purpose, reserveBytes = 0): Child {
  const { file, execArgv } = childEntry('web-child');
  // No pipes: an open stdio pipe would keep the parent alive after its work is done.
  const flags = purpose === 'check' ? CHECK_FLAGS : [];
  const proc = fork(file, [], { execArgv: [...execArgv, ...flags], env: childEnv(), serialization: 'advanced', stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const c: Child = { proc, entry: ort.entry, purpose, ready: Promise.resolve() };
  proc.on('exit', () => {
    const i = idle.indexOf(c);
    if (i >= 0) idle.splice(i, 1);
  });
  const limits = probeLimits(reserveBytes);
  c.ready = request<{ ok: boolean; message?: string }>(c, { kind: 'init', entry: ort.entry, reserveBytes }, { ...limits, phase: 'loading onnxruntime-web' }).then((r) => {
    if (!r.ok) throw new CompressError('runtime', `onnxruntime-web does not start: ${r.message ?? 'unknown error'}`);
  });
  c.ready.catch(() => proc.kill());
  setRef(c, false);
  return c;
}

/** An idle child for `ort` (started now when there is none), taken out of the pool until `release`. */
function take(ort: OrtWebInfo, purpose: Purpose): Child {
  const i = idle.findIndex((c) => c.entry === ort.entry && c.purpose === purpose && c.proc.exitCode === null && c.proc.signalCode === null);
  if (i >= 0) return idle.splice(i, 1)[0];
  return spawn(ort, purpose);
}

function release(c: Child): void {
  if (c.proc.exitCode === null && c.proc.signalCode === null && !c.proc.killed) idle.push(c);
}

/** The most wasm memory a check child touches ahead of a model (`prewarmWeb`). */
export const MAX_RESERVE_BYTES = 256 * 2 ** 20;

/**
 * Starts a child and its wasm runtime now, so that a later `runWeb` finds it ready (the pipeline calls
 * this when a build starts; the steps run meanwhile). Does nothing when an idle child is there.
 *
 * `expectedBytes`, the size the output will have, lets the child touch about as much wasm memory as
 * loading that model will use (2.5×, at most MAX_RESERVE_BYTES) and free it again: wasm memory never
 * shrinks, so the model's load reuses pages already mapped instead of faulting in fresh ones. On a
 * virtual machine where a page fault costs ~17 µs, that was most of the first load: 28 MB of int8
 * weights loaded in 507–599 ms in a fresh child, 191–245 ms after 96 MB were touched (which took the
 * child 363 ms, while the build's steps ran).
 */
export function prewarmWeb(ort: OrtWebInfo, expectedBytes = 0): void {
  if (idle.some((c) => c.entry === ort.entry && c.purpose === 'check')) return;
  const c = spawn(ort, 'check', Math.min(MAX_RESERVE_BYTES, Math.round(expectedBytes * 2.5)));
  c.ready.catch(() => {}); // reported by the request that uses it
  idle.push(c);
}

function fileBytes(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/**
 * Loads `file` in onnxruntime-web (wasm) in a child and runs it once on `feeds`. Answers the outputs, or
 * why it does not load or run (the op and its nodes when the loader names one). Throws
 * CompressError('runtime') when the child times out, runs out of memory or ends.
 */
export async function runWeb(ort: OrtWebInfo, file: string, feeds: WireFeeds): Promise<WebRunReply> {
  const c = take(ort, 'check');
  try {
    await c.ready;
    const l = probeLimits(fileBytes(file));
    return await request<WebRunReply>(c, { kind: 'run', model: file, feeds }, { ...l, phase: 'the web check' });
  } finally {
    release(c);
  }
}

/**
 * Latency in onnxruntime-web (wasm) of `original` and `compressed` on one input each: warm-up runs of
 * both (at least `warmup` each, for `warmupMs` (default 2 s) and until they stop getting faster: V8
 * optimizes hot wasm functions only after they ran a while), then `runs` runs each, interleaved so that
 * machine noise hits both alike.
 * Times in ms. An original that does not load or run there is reported (`originalError`), not thrown.
 */
export async function webLatency(
  ort: OrtWebInfo,
  original: string,
  compressed: string,
  feeds: { original: WireFeeds; compressed: WireFeeds },
  opts: { runs: number; warmup?: number; warmupMs?: number; allowedDirs?: readonly string[] },
): Promise<WebLatencyReply> {
  const warmup = opts.warmup ?? 2;
  const warmupMs = opts.warmupMs ?? 2000;
  const c = take(ort, 'latency');
  try {
    await c.ready;
    // Two loads, then (runs + warmup) runs of each: each ten runs may take as long as one probe of the model.
    const per = probeLimits(Math.max(fileBytes(original), fileBytes(compressed)));
    const timeoutMs = per.timeoutMs * 2 + Math.max(warmupMs, 30_000) + Math.ceil((opts.runs + warmup) / 10) * per.timeoutMs;
    const message = { kind: 'latency', original, compressed, feeds, runs: opts.runs, warmup, warmupMs, allowedDirs: [...(opts.allowedDirs ?? [])] };
    return await request<WebLatencyReply>(c, message, { timeoutMs, memoryBytes: per.memoryBytes * 2, phase: 'the web latency' });
  } finally {
    release(c);
  }
}

/** Ends the pool's children (tests; a process exit ends them anyway). */
export function closeWebPool(): void {
  for (const c of idle.splice(0)) c.proc.kill();
}

