/**
 * Native work on user models in a child process: onnxruntime can abort the whole process ("terminate
 * called without an active exception") or hang on a malformed model, and a worker thread dies with its
 * process. `probeIsolated` loads and runs a model once in a pooled child with a time and a memory limit
 * (scaled by the model's size); a crash, a timeout or too much memory becomes a CompressError for that
 * model, and the child is replaced. The pipeline probes before it opens the same model with the same
 * input in-process, so a model that would take the process down never reaches it there.
 *
 * Children are reused across models (starting one costs ~0.3 s) and do not keep the parent alive.
 * ONNX_COMPRESS_ISOLATE=0 turns isolation off.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { statSync } from 'node:fs';
import type { Tensor } from 'onnxruntime-node';
import { CompressError, type ErrorLocation } from '../errors.js';
import { humanSize, limit } from '../limits.js';
import { childEntry, childEnv, keepAlive, residentBytes } from './child.js';

export interface ProbeOptions {
  /** Names the model in messages (a file path) and what the probe is for ("verify"). */
  file?: string;
  phase: string;
  timeoutMs?: number;
  memoryBytes?: number;
  /** Session options of the child's session (default: pre-packing on, as a user's session has). */
  prepacking?: boolean;
  /** Quantized matmuls with float activations, as onnxruntime-web computes them (SessionOptions.floatActivations). */
  floatActivations?: boolean;
  /** SessionOptions.quantizedActivations, where the caller knows. */
  quantizedActivations?: boolean;
  /** Send the outputs back (the web check compares onnxruntime-web's with them). */
  outputs?: boolean;
  /** Graph optimization level of the child's session (default 'all'). */
  optimization?: 'all' | 'disabled';
}

/** An output as it crosses the process boundary. */
export interface PlainTensor {
  type: string;
  dims: number[];
  data: Tensor['data'];
}

/**
 * A plain tensor typed as onnxruntime's, made without loading onnxruntime: what crosses to the isolated
 * child and the web check (synthetic feeds); runSession wraps it where a session runs in this process.
 */
export function plainTensor(type: string, data: Tensor['data'], dims: readonly number[]): Tensor {
  return { type, dims: [...dims], data, size: data.length } as unknown as Tensor;
}

/** One run of a list of feeds (simplify's output check): its outputs, or what onnxruntime said. */
export type RunOutcome = { outputs: Record<string, PlainTensor> } | { message: string };

/**
 * What onnxruntime said when it failed without crashing (the caller's in-process run gives its own error).
 * Given a list of feeds, the model is loaded once and run on each; `runs` has every run's outcome.
 */
export type ProbeResult = { ok: true; outputs?: Record<string, PlainTensor>; runs?: RunOutcome[] } | { ok: false; stage: 'load' | 'run'; message: string };

export function isolationEnabled(): boolean {
  return process.env.ONNX_COMPRESS_ISOLATE !== '0';
}

/** Default limits for a model of `bytes`: the configured base plus room that grows with the model. */
export function probeLimits(bytes: number): { timeoutMs: number; memoryBytes: number } {
  return {
    timeoutMs: limit('ISOLATE_MS') + Math.ceil(bytes / 2 ** 20) * 50,
    memoryBytes: limit('ISOLATE_MEMORY_BYTES') + 8 * bytes,
  };
}

interface Worker {
  child: ChildProcess;
  busy: boolean;
}

const idle: Worker[] = [];
let nextId = 1;

function spawnWorker(): Worker {
  const { file, execArgv } = childEntry('isolate-child');
  // No pipes: an open stdio pipe would keep the parent alive after its work is done (ORT's own logging
  // is not needed; the reply, or the exit signal, carries what matters).
  // --expose-gc: the child frees the memory it faulted in ahead (prefault) at once, for its sessions.
  const child = fork(file, [], { execArgv: [...execArgv, '--expose-gc'], env: childEnv({ keepHeap: true }), serialization: 'advanced', stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  const w: Worker = { child, busy: false };
  child.on('exit', () => {
    const i = idle.indexOf(w);
    if (i >= 0) idle.splice(i, 1);
  });
  unref(w);
  return w;
}

// An idle child must not keep the parent alive (the CLI exits when its work is done).
const unref = (w: Worker) => keepAlive(w.child, false);
const ref = (w: Worker) => keepAlive(w.child, true);

/**
 * Starts a child ahead of the first probe, so that its start (node and onnxruntime's native library,
 * ~0.3 s) overlaps with the build's own reading and hashing instead of adding to it. `modelBytes` (the
 * source's size) asks the idle child to fault in that much memory meanwhile, capped (isolate-child.ts,
 * prefault): the verified session's memory is then already there.
 */
export function warmIsolatedPool(modelBytes = 0): void {
  if (!isolationEnabled()) return;
  if (idle.length === 0 && !running) idle.push(spawnWorker());
  if (modelBytes > 0) for (const w of idle) w.child.send({ prefault: modelBytes }, () => {});
}

/** Pids of the pool's children (tests use them to simulate a native crash). */
export function isolatedPids(): number[] {
  return idle.map((w) => w.child.pid!).filter(Boolean);
}

let running: Worker | undefined;
/** The child running a probe now, if any (for tests). */
export function runningIsolatedPid(): number | undefined {
  return running?.child.pid;
}

/** Loads and runs `model` once on `feeds` in a child process; see the file comment. */
export async function probeIsolated(model: Uint8Array | string, feeds: Record<string, Tensor> | Record<string, Tensor>[], opts: ProbeOptions): Promise<ProbeResult> {
  // A path is loaded by the child itself (with any external data beside it); bytes are sent over.
  const limits = probeLimits(typeof model === 'string' ? statSync(model).size : model.byteLength);
  const timeoutMs = opts.timeoutMs ?? limits.timeoutMs;
  const memoryBytes = opts.memoryBytes ?? limits.memoryBytes;
  const where: ErrorLocation = opts.file ? { file: opts.file } : {};
  const w = idle.pop() ?? spawnWorker();
  w.busy = true;
  running = w;
  ref(w);
  const id = nextId++;
  const toPlain = (f: Record<string, Tensor>) => Object.fromEntries(Object.entries(f).map(([k, t]) => [k, { type: t.type, dims: [...t.dims], data: t.data }]));
  const plain = Array.isArray(feeds) ? feeds.map(toPlain) : toPlain(feeds);
  try {
    return await new Promise<ProbeResult>((resolve, reject) => {
      let settled = false;
      const finish = (f: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(watch);
        w.child.off('message', onMessage);
        w.child.off('exit', onExit);
        f();
      };
      const kill = (why: string) => {
        w.child.kill('SIGKILL');
        finish(() => reject(new CompressError('runtime', `onnxruntime ${why} (during ${opts.phase})`, where)));
      };
      const timer = setTimeout(() => kill(`timed out after ${Math.round(timeoutMs / 1000)} s loading or running the model; the limit grows with the model's size (set ONNX_COMPRESS_LIMIT_ISOLATE_MS to change the base)`), timeoutMs);
      const watch = setInterval(() => {
        const rss = residentBytes(w.child.pid!);
        if (rss !== undefined && rss > memoryBytes) kill(`used more than ${humanSize(memoryBytes)} of memory on the model (set ONNX_COMPRESS_LIMIT_ISOLATE_MEMORY_BYTES to change the base)`);
      }, 100);
      const onMessage = (m: { id: number; ok: boolean; stage?: 'load' | 'run'; message?: string; outputs?: Record<string, PlainTensor>; runs?: RunOutcome[] }) => {
        if (m.id !== id) return;
        finish(() => resolve(m.ok ? { ok: true, ...(m.outputs && { outputs: m.outputs }), ...(m.runs && { runs: m.runs }) } : { ok: false, stage: m.stage ?? 'load', message: m.message ?? 'unknown error' }));
      };
      const onExit = (code: number | null, signal: string | null) =>
        finish(() => reject(new CompressError('runtime', `onnxruntime crashed on the model (during ${opts.phase}): the process ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`, where)));
      w.child.on('message', onMessage);
      w.child.on('exit', onExit);
      w.child.send({ id, model, feeds: plain, prepacking: opts.prepacking ?? true, floatActivations: opts.floatActivations ?? false, quantizedActivations: opts.quantizedActivations, outputs: opts.outputs ?? false, optimization: opts.optimization ?? 'all' }, (err) => {
        if (err) finish(() => reject(new CompressError('runtime', `cannot start the isolated onnxruntime process: ${err.message}`, where)));
      });
    });
  } finally {
    running = undefined;
    w.busy = false;
    if (w.child.exitCode === null && w.child.signalCode === null && !w.child.killed) {
      unref(w);
      idle.push(w);
    }
  }
}

/** Ends the pool's children (tests; a process exit ends them anyway). */
export function closeIsolatedPool(): void {
  for (const w of idle.splice(0)) w.child.kill();
}
