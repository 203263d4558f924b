/**
 * The output check every simplified model passes: the original and the simplified model run in
 * onnxruntime-node on the same feeds, and every output must agree within `tolerance` relative to the
 * output's largest magnitude (integer and bool outputs exactly). Feeds: the build's calibration samples
 * when it has them, plus synthetic ones with symbolic dims set to 1 and to 3, so a fold that baked in a
 * batch size of 1 is caught. A feed the original model cannot run on is skipped.
 *
 * Some models amplify float rounding past 1e-5. PP-OCRv4 det's sigmoid map moves by 1.7–5.4e-5 relative
 * on real images between onnxruntime's graph optimizations on and off (its own Conv+BN fusion among
 * them); on the synthetic feeds the map is saturated near 0 (largest value ~3e-6), where onnxruntime's
 * sigmoid resolves steps of 3e-8, so a few steps are 0.3–11 % of the largest value. An exact Conv+BN
 * fold there moves the map by 0.4–1.7× what the optimizations do (2 images, 60 synthetic feeds), while a
 * one-channel bias error of 0.01 moves it by 69× or more on the images. So an output beyond `tolerance`
 * is held against the original's own rounding noise: the original run once more with graph
 * optimizations disabled, per feed and output; a difference within NOISE_FACTOR times that is rounding.
 * The extra run happens only when something exceeds `tolerance`. A saturated output says little either
 * way (a bias error of 1 moved the saturated map by 1.3–226× the noise): calibration samples make the check.
 *
 * The runs happen in the isolated child (src/runtime/isolate.ts), each model loaded once and run on every
 * feed there: a candidate that aborts or hangs onnxruntime fails the check with that reason (the step
 * drops the pass at fault), and an original that does is a CompressError for the model — never the end
 * of the build's process. The model goes there as a temp file of this process, the feeds and outputs
 * cross the process boundary unchanged, and the child's session has the options used here before (one
 * thread, pre-packing), so the values are the same. ONNX_COMPRESS_ISOLATE=0 runs them in this process.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { CompressError } from '../../errors.js';
import { encodeModelToBytes } from '../../onnx/codec.js';
import { processTempDir } from '../../onnx/io.js';
import type { ModelProto } from '../../onnx/types.js';
import { withLazyLoaded } from '../../onnx/lazy.js';
import { withinInputBudget } from '../../limits.js';
import { seededRandom } from '../../random.js';
import { isolationEnabled, plainTensor, probeIsolated, type PlainTensor } from '../../runtime/isolate.js';
import { inputSpecs } from '../../runtime/specs.js';

export type Feeds = Record<string, ort.Tensor>;
/** Outputs of one run: onnxruntime's tensors, or their type, dims and data from the isolated child. */
type Outputs = Record<string, ort.Tensor | PlainTensor>;
type Optimization = 'all' | 'disabled';

const SESSION: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  logSeverityLevel: 4,
};

/** How many times the original's own rounding noise a candidate may differ by (exact folds measured 0.4–1.7×). */
export const NOISE_FACTOR = 2;

export interface CheckResult {
  /** Largest relative difference over all outputs and feeds (0 when equal). */
  maxRelDiff: number;
  /**
   * Largest relative difference between the original run with and without onnxruntime's graph
   * optimizations, where a difference beyond the tolerance was held against it (undefined otherwise).
   */
  noiseRelDiff?: number;
  /** Why the check failed, or undefined. */
  failure?: string;
  /** Feeds both models ran on. */
  feeds: number;
  /** onnxruntime crashed, hung or ran out of memory on the candidate (in the isolated child). */
  crashed?: boolean;
}

/** Inputs from the model's declared types: symbolic dims = `symbolic`, floats in [0, 1), integers 0. */
export function syntheticFeeds(model: ModelProto, symbolic: number, seed: number): Feeds | undefined {
  const rand = seededRandom(seed >>> 0 || 1);
  const feeds: Feeds = {};
  // Declared shapes come from the file: one over the memory budget (or with overflowing dims) is no feed.
  const shapes = inputSpecs(model).map((s) => ({ ...s, dims: s.dims.map((d) => (typeof d === 'number' && d >= 0 ? d : symbolic)) }));
  if (!withinInputBudget(shapes)) return undefined;
  for (const spec of inputSpecs(model)) {
    const dims = spec.dims.map((d) => (typeof d === 'number' && d >= 0 ? d : symbolic));
    const n = dims.reduce((a, b) => a * b, 1);
    switch (spec.type) {
      case 'float32':
        feeds[spec.name] = plainTensor('float32', Float32Array.from({ length: n }, rand), dims);
        break;
      case 'float64':
        feeds[spec.name] = plainTensor('float64', Float64Array.from({ length: n }, rand), dims);
        break;
      case 'int64':
        feeds[spec.name] = plainTensor('int64', new BigInt64Array(n), dims);
        break;
      case 'int32':
        feeds[spec.name] = plainTensor('int32', new Int32Array(n), dims);
        break;
      case 'bool':
        feeds[spec.name] = plainTensor('bool', new Uint8Array(n), dims);
        break;
      case 'float16':
        feeds[spec.name] = plainTensor('float16', new Uint16Array(n).fill(0x3800), dims);
        break;
      default:
        return undefined;
    }
  }
  return feeds;
}

interface Comparison {
  rel: number;
  /** Largest absolute difference and largest magnitude in `a` (float outputs). */
  diff?: number;
  scale?: number;
  failure?: string;
}

function compare(name: string, a: ort.Tensor | PlainTensor, b: ort.Tensor | PlainTensor, tolerance: number): Comparison {
  if (a.type !== b.type || a.dims.join() !== b.dims.join()) {
    return { rel: Infinity, failure: `output "${name}" is ${b.type} [${b.dims.join(', ')}], was ${a.type} [${a.dims.join(', ')}]` };
  }
  const x = a.data as ArrayLike<number | bigint | string>;
  const y = b.data as ArrayLike<number | bigint | string>;
  const exact = !(a.type === 'float32' || a.type === 'float64' || a.type === 'float16');
  if (exact || a.type === 'float16') {
    // float16 arrives as bit patterns: compare exactly (simplification does not touch float16 math).
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return { rel: Infinity, failure: `output "${name}" differs at element ${i}` };
    return { rel: 0 };
  }
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < x.length; i++) {
    const p = x[i] as number;
    const q = y[i] as number;
    if (Number.isNaN(p) || Number.isNaN(q)) {
      if (Number.isNaN(p) !== Number.isNaN(q)) return { rel: Infinity, failure: `output "${name}" has NaN at element ${i} in one model only` };
      continue;
    }
    if (!Number.isFinite(p) || !Number.isFinite(q)) {
      if (p !== q) return { rel: Infinity, failure: `output "${name}" differs at element ${i} (${p} vs ${q})` };
      continue;
    }
    scale = Math.max(scale, Math.abs(p));
    diff = Math.max(diff, Math.abs(p - q));
  }
  const rel = diff === 0 ? 0 : diff / Math.max(scale, Number.MIN_VALUE);
  return rel > tolerance ? { rel, diff, scale, failure: `output "${name}" differs by ${rel.toExponential(2)} relative (limit ${tolerance})` } : { rel, diff, scale };
}

/**
 * The model's outputs on each feed (undefined where a run fails). Throws when onnxruntime cannot load the
 * model (an Error), or crashes, hangs or runs out of memory on it in the isolated child (a CompressError
 * of kind 'runtime', "onnxruntime crashed on the model (during <phase>): …").
 */
async function runAll(bytes: Uint8Array, feeds: Feeds[], optimization: Optimization, phase: string): Promise<(Outputs | undefined)[]> {
  if (isolationEnabled()) {
    // Sent as a file: the IPC channel copies a model's bytes at ~6–10 ms per MB (PP-OCRv4 rec, 10.8 MB:
    // load and two runs 185 ms with the bytes sent, 121 ms from a temp file, ~130 ms in this process).
    const file = join(processTempDir(), `check.${process.pid}.${process.hrtime.bigint().toString(36)}.onnx`);
    writeFileSync(file, bytes);
    try {
      const r = await probeIsolated(file, feeds, { phase, optimization, prepacking: true });
      if (!r.ok) throw new Error(r.message);
      return (r.runs ?? []).map((x) => ('outputs' in x ? x.outputs : undefined));
    } finally {
      rmSync(file, { force: true });
    }
  }
  const { createSession, runSession } = await import('../../runtime/session.js');
  const s = await createSession(bytes, { ...SESSION, graphOptimizationLevel: optimization });
  try {
    const out: (Outputs | undefined)[] = [];
    for (const f of feeds) {
      try {
        out.push(await runSession(s, f));
      } catch {
        out.push(undefined);
      }
    }
    return out;
  } finally {
    await s.release();
  }
}

/** Whether `e` is onnxruntime crashing, hanging or running out of memory in the isolated child. */
const isNative = (e: unknown): e is CompressError => e instanceof CompressError && e.kind === 'runtime' && /^onnxruntime (crashed|timed out|used more than)/.test(e.message);

/** Runs both models on every feed; the original's results can be reused across calls via `reference`. */
export class OutputCheck {
  private reference?: Promise<(Outputs | undefined)[]>;
  /**
   * Per feed and output: the original's largest absolute difference from itself without graph
   * optimizations; or, where onnxruntime crashed on the original so configured, why.
   */
  private noise?: Promise<(Record<string, number> | undefined)[] | { crashed: string }>;

  private made?: Feeds[];

  /**
   * `feeds` are made on the first check (a build whose passes were all exact makes none); `file` names
   * the original in the error for an original that crashes onnxruntime.
   */
  constructor(
    private readonly original: ModelProto,
    private readonly makeFeeds: () => Feeds[],
    private readonly tolerance: number,
    private readonly file?: string,
  ) {}

  private get feeds(): Feeds[] {
    return (this.made ??= this.makeFeeds());
  }

  /** A crash of onnxruntime on the original: the model is at fault (bad input), not a pass. */
  private sourceFault(e: CompressError): CompressError {
    return new CompressError('model', e.message, this.file ? { file: this.file } : {}, { cause: e });
  }

  async check(candidate: ModelProto): Promise<CheckResult> {
    // One session at a time: peak memory stays near one extra copy of the model. An original ORT cannot
    // load (or one too large for a single buffer) leaves nothing to compare against; the step says so.
    this.reference ??= (async () => {
      try {
        return await runAll(encodeModelToBytes(withLazyLoaded(this.original)), this.feeds, 'all', "simplify's output check, on the source model");
      } catch (e) {
        if (isNative(e)) throw this.sourceFault(e);
        if (e instanceof CompressError) throw e; // the child could not start, or the build's own probe of the source failed
        return this.feeds.map(() => undefined);
      }
    })();
    const ref = await this.reference;
    if (ref.every((r) => !r)) return { maxRelDiff: 0, feeds: 0 };
    let got: (Outputs | undefined)[];
    try {
      got = await runAll(encodeModelToBytes(withLazyLoaded(candidate)), this.feeds, 'all', "simplify's output check");
    } catch (e) {
      // A crash, hang or memory blow-up on the candidate is the pass's fault: the step drops it.
      if (isNative(e)) return { maxRelDiff: Infinity, failure: e.message.replace(' on the model ', ' on the simplified model '), feeds: 0, crashed: true };
      if (e instanceof CompressError) throw e;
      return { maxRelDiff: Infinity, failure: `onnxruntime cannot load the simplified model: ${(e as Error).message}`, feeds: 0 };
    }
    let maxRelDiff = 0;
    let noiseRelDiff: number | undefined;
    let feeds = 0;
    for (let i = 0; i < this.feeds.length; i++) {
      const r = ref[i];
      if (!r) continue;
      const g = got[i];
      if (!g) return { maxRelDiff: Infinity, failure: `the simplified model fails on a feed the original runs on`, feeds };
      feeds++;
      for (const name of Object.keys(r)) {
        if (!g[name]) return { maxRelDiff: Infinity, failure: `output "${name}" is missing`, feeds };
        const c = compare(name, r[name], g[name], this.tolerance);
        maxRelDiff = Math.max(maxRelDiff, c.rel);
        if (!c.failure) continue;
        if (c.diff === undefined || c.scale === undefined || !Number.isFinite(c.rel)) return { maxRelDiff, failure: c.failure, feeds };
        const noise = await this.noiseOf(ref);
        // Without the original's own noise to hold the difference against, it stands as it is.
        if (!Array.isArray(noise)) return { maxRelDiff, failure: `${c.failure.slice(0, -1)}; the original's own rounding noise is unknown: ${noise.crashed})`, feeds };
        const own = noise[i]?.[name] ?? 0;
        const ownRel = own / Math.max(c.scale, Number.MIN_VALUE);
        noiseRelDiff = Math.max(noiseRelDiff ?? 0, ownRel);
        if (c.diff > NOISE_FACTOR * own) {
          const why = own ? `${NOISE_FACTOR}× the ${ownRel.toExponential(2)} the original itself moves by without onnxruntime's graph optimizations` : 'the original does not move without onnxruntime\'s graph optimizations';
          return { maxRelDiff, noiseRelDiff, failure: `${c.failure.slice(0, -1)}; ${why})`, feeds };
        }
      }
    }
    return { maxRelDiff, feeds, ...(noiseRelDiff !== undefined && { noiseRelDiff }) };
  }

  /** The original's rounding noise (see the file comment), measured once, on first need. */
  private noiseOf(ref: (Outputs | undefined)[]): Promise<(Record<string, number> | undefined)[] | { crashed: string }> {
    this.noise ??= (async () => {
      let plain: (Outputs | undefined)[];
      try {
        plain = await runAll(encodeModelToBytes(withLazyLoaded(this.original)), this.feeds, 'disabled', "simplify's output check, on the source model without graph optimizations");
      } catch (e) {
        // The original runs with them (the reference run): a crash only without them blames no pass and
        // does not fail the model; the difference is judged without the allowance.
        if (isNative(e)) return { crashed: e.message };
        return this.feeds.map(() => undefined);
      }
      return ref.map((r, i) => {
        const p = plain[i];
        if (!r || !p) return undefined;
        const out: Record<string, number> = {};
        for (const name of Object.keys(r)) if (p[name]) out[name] = compare(name, r[name], p[name], Infinity).diff ?? 0;
        return out;
      });
    })();
    return this.noise;
  }
}
