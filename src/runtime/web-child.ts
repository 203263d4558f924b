/**
 * The child side of src/runtime/web.ts: onnxruntime-web's wasm backend in a process of its own.
 * Requests (structured clone), answered in order, each with its id:
 *
 *   { kind: 'init', entry }                       loads onnxruntime-web from `entry` and starts its wasm runtime
 *   { kind: 'run', model, feeds }                 loads the model file, runs it once, answers its outputs
 *   { kind: 'latency', original, compressed, feeds, runs, warmup }   times both models, interleaved
 *
 * A model that does not load or run is an answer ({ ok: false, stage, message, op?, nodes? }), not a crash.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { decodeModel, encodeModelToBytes } from '../onnx/codec.js';
import { DataType } from '../onnx/dtypes.js';
import { DataLocation, externalDataFile, externalRef } from '../onnx/external.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../onnx/graph.js';
import { makeTensor } from '../onnx/tensor.js';
import type { ModelProto } from '../onnx/types.js';
import { forEachTensor } from '../onnx/walk.js';
import { WEB_THREADS, type WireFeeds, type WireTensor } from './web.js';
import { accuracyLevelNodes, nodesWithOp, unsupportedOp } from './web-compat.js';

type OrtWeb = typeof import('onnxruntime-web');
type Session = Awaited<ReturnType<OrtWeb['InferenceSession']['create']>>;

let ort: OrtWeb | undefined;

// The parent went away (exited or was killed): nothing left to answer.
process.on('disconnect', () => process.exit(0));

function message(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  // "Can't create a session. ERROR_CODE: 1, ERROR_MESSAGE: …": the part after ERROR_MESSAGE says what.
  const i = m.indexOf('ERROR_MESSAGE: ');
  const text = (i >= 0 ? m.slice(i + 'ERROR_MESSAGE: '.length) : m).replace(/(^|\s)\/\S+\.(cc|cpp|h):\d+\s*/g, '$1').replace(/\s+/g, ' ').trim();
  return text.length > 300 ? text.slice(0, 297) + '...' : text;
}

/**
 * Session options: onnxruntime-web's defaults, and the external data files a model names, resolved and
 * confined to its folder as everywhere else (src/onnx/external.ts).
 */
function sessionOptions(file: string, model: ModelProto, allowedDirs: readonly string[]): Parameters<OrtWeb['InferenceSession']['create']>[1] {
  const external = new Set<string>();
  forEachTensor(model, (t) => {
    if (t.dataLocation === DataLocation.EXTERNAL) external.add(externalRef(t, file).location);
  });
  const dir = path.dirname(file);
  return {
    executionProviders: ['wasm'],
    graphOptimizationLevel: 'all',
    ...(external.size && { externalData: [...external].map((p) => ({ path: p, data: readFileSync(externalDataFile(dir, p, file, allowedDirs)) })) }),
  };
}

/** A model with one Identity node: its session starts the wasm runtime. */
function probeModelBytes(): Uint8Array {
  const io = (name: string) => makeValueInfo(name, DataType.FLOAT, [1]);
  return encodeModelToBytes(makeModel(makeGraph('probe', [makeNode('Identity', ['x'], ['y'])], [io('x')], [io('y')])));
}

/**
 * A model that fills a float32 tensor of the length it is given (ConstantOfShape) and reduces it to one
 * number: running it touches that much wasm memory, which stays mapped once freed (see prewarmWeb).
 */
function fillModelBytes(): Uint8Array {
  const one = makeTensor('one', DataType.FLOAT, [1], new Float32Array([1]));
  const nodes = [makeNode('ConstantOfShape', ['shape'], ['x'], { attributes: [makeAttribute('value', one)] }), makeNode('ReduceMax', ['x'], ['y'], { attributes: [makeAttribute('keepdims', 0, true)] })];
  return encodeModelToBytes(makeModel(makeGraph('fill', nodes, [makeValueInfo('shape', DataType.INT64, [1])], [makeValueInfo('y', DataType.FLOAT, [])])));
}

type Failure = { ok: false; stage: 'load' | 'run'; message: string; op?: string; domain?: string; nodes?: string[] };

function failure(stage: 'load' | 'run', e: unknown, bytes: Uint8Array, file: string, model?: ModelProto): Failure {
  const text = message(e);
  const op = unsupportedOp(text);
  let nodes: string[] | undefined;
  if (op) {
    try {
      nodes = nodesWithOp(model ?? decodeModel(bytes, file), op.op, op.domain);
    } catch {
      // the names are a courtesy
    }
  }
  return { ok: false, stage, message: text, ...op, ...(nodes && { nodes }) };
}

/** The model's bytes, decoded once (external data to hand over, then the checks on it), and its session. */
async function open(file: string, allowedDirs: readonly string[] = []): Promise<{ session: Session; bytes: Uint8Array; model: ModelProto } | Failure> {
  const bytes = readFileSync(file);
  try {
    const model = decodeModel(bytes, file);
    return { session: await ort!.InferenceSession.create(bytes, sessionOptions(file, model, allowedDirs)), bytes, model };
  } catch (e) {
    return failure('load', e, bytes, file);
  }
}

function toWeb(feeds: WireFeeds): Record<string, InstanceType<OrtWeb['Tensor']>> {
  return Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, new ort!.Tensor(t.type as 'float32', t.data as Float32Array, t.dims)]));
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function toWire(outputs: Record<string, { type: string; dims: readonly number[]; data: unknown }>): Record<string, WireTensor> {
  return Object.fromEntries(Object.entries(outputs).map(([k, t]) => [k, { type: t.type, dims: [...t.dims], data: t.data }]));
}

const handlers = {
  async init(m: { entry: string; reserveBytes?: number }) {
    const web = createRequire(m.entry)(m.entry) as OrtWeb;
    web.env.wasm.numThreads = WEB_THREADS;
    web.env.logLevel = 'error';
    ort = web;
    // The first session starts the wasm runtime (0.5–1 s): do it now, on a one-node model.
    const s = await web.InferenceSession.create(probeModelBytes(), { executionProviders: ['wasm'] });
    await s.release();
    const floats = Math.floor((m.reserveBytes ?? 0) / 4);
    if (floats > 0) {
      try {
        const fill = await web.InferenceSession.create(fillModelBytes(), { executionProviders: ['wasm'], graphOptimizationLevel: 'disabled' });
        await fill.run({ shape: new web.Tensor('int64', BigInt64Array.from([BigInt(floats)]), [1]) });
        await fill.release();
      } catch {
        // only a head start
      }
    }
    return { ok: true };
  },

  async run(m: { model: string; feeds: WireFeeds }) {
    const t0 = performance.now();
    const o = await open(m.model);
    if ('ok' in o) return o;
    const loadMs = performance.now() - t0;
    try {
      const t1 = performance.now();
      let outputs: Record<string, WireTensor>;
      try {
        outputs = toWire(await o.session.run(toWeb(m.feeds)));
      } catch (e) {
        return failure('run', e, o.bytes, m.model, o.model);
      }
      const runMs = performance.now() - t1;
      return { ok: true, outputs, loadMs, runMs, accuracyLevelNodes: accuracyLevelNodes(o.model) };
    } finally {
      await o.session.release();
    }
  },

  async latency(m: { original: string; compressed: string; feeds: { original: WireFeeds; compressed: WireFeeds }; runs: number; warmup: number; warmupMs: number; allowedDirs?: string[] }) {
    const comp = await open(m.compressed);
    if ('ok' in comp) return comp;
    const orig = await open(m.original, m.allowedDirs);
    try {
      const fc = toWeb(m.feeds.compressed);
      const fo = toWeb(m.feeds.original);
      let originalError = 'ok' in orig ? `does not load: ${orig.message}` : undefined;
      const o = 'ok' in orig ? undefined : orig.session;
      const timesO: number[] = [];
      const timesC: number[] = [];
      const time = async (s: Session, feeds: typeof fc, into?: number[]) => {
        const t = performance.now();
        await s.run(feeds);
        into?.push(performance.now() - t);
      };
      const round = async (counted: boolean): Promise<Failure | undefined> => {
        if (o && !originalError) {
          try {
            await time(o, fo, counted ? timesO : undefined);
          } catch (e) {
            originalError = `fails to run: ${message(e)}`;
          }
        }
        try {
          await time(comp.session, fc, counted ? timesC : undefined);
        } catch (e) {
          return failure('run', e, comp.bytes, m.compressed, comp.model);
        }
        return undefined;
      };
      // V8 runs wasm on its baseline compiler first and optimizes hot functions in the background, as
      // browsers do: the first runs are several times slower than a page's steady state. Warm up for
      // `warmupMs` at least, then until the runs stop getting faster (the median of the last 5 runs of
      // each model within 10 % of the 5 before), for at most 30 s or 500 runs.
      const t0 = performance.now();
      const recentO: number[] = [];
      const recentC: number[] = [];
      const settled = (v: number[]) => v.length < 10 || median(v.slice(-5)) >= 0.9 * median(v.slice(-10, -5));
      let warmup = 0;
      for (;;) {
        const elapsed = performance.now() - t0;
        const done = warmup >= m.warmup && elapsed >= m.warmupMs && warmup >= 10 && settled(recentO) && settled(recentC);
        if (done || warmup >= 500 || (warmup >= m.warmup && elapsed >= 30_000)) break;
        const nO = timesO.length;
        const f = await round(true);
        if (f) return f;
        // Warm-up times go to the recent windows, not the figures.
        if (timesO.length > nO) recentO.push(timesO.pop()!);
        recentC.push(timesC.pop()!);
        warmup++;
      }
      for (let r = 0; r < m.runs; r++) {
        const f = await round(true);
        if (f) return f;
      }
      return { ok: true, warmup, compressed: timesC, ...(originalError ? { originalError } : { original: timesO }) };
    } finally {
      await comp.session.release();
      if (!('ok' in orig)) await orig.session.release();
    }
  },
};

let queue = Promise.resolve();
process.on('message', (m: { id: number; kind: keyof typeof handlers } & Record<string, unknown>) => {
  queue = queue.then(async () => {
    let reply: object;
    try {
      reply = await (handlers[m.kind] as unknown as (x: typeof m) => Promise<object>)(m);
    } catch (e) {
      reply = { ok: false, stage: 'load', message: message(e) };
    }
    process.send!({ id: m.id, ...reply });
  });
});
