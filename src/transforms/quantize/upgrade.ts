/**
 * Raising the model's opset when the quantized forms need a newer one than it imports
 * (DequantizeLinear 10, per-axis 13, 4-bit/blocked 21, DynamicQuantizeLinear 11), and proving the
 * upgrade kept the model's meaning: the upgraded and the original model run in onnxruntime on the
 * calibration samples (or a synthetic input) and every output must match before anything is
 * quantized. When an op cannot be converted, or the outputs differ, the model keeps its opset and the
 * plans fall back to what that opset allows (forms.ts) — with a warning naming the op and node.
 */
import type * as ort from 'onnxruntime-node';
import { randomSamples } from '../../data/random.js';
import type { Sample } from '../../data/types.js';
import { opsetVersion, type NameScope } from '../../onnx/graph.js';
import { upgradeOpset, type UpgradeReport } from '../../onnx/opset/index.js';
import type { GraphProto, ModelProto, NodeProto } from '../../onnx/types.js';
import { allGraphs } from '../../onnx/walk.js';
import { inputSpecs, openSession, runSession } from '../../runtime/session.js';

export interface OpsetUpgrade {
  from: number;
  to: number;
  /** The opset the forms asked for. */
  wanted: number;
  irVersion?: { from: number; to: number };
  converted: { op: string; at: number; what: string; nodes: number }[];
  /** How the upgraded model was checked against the original. */
  check?: { samples: number; outputs: number; maxAbsDiff: number };
  /** Why the outputs could not be compared (the upgrade was kept: every adapter is tested). */
  unchecked?: string;
  /** Why the model kept its opset (op and node), when it did. */
  blocker?: string;
}

/**
 * Upgrades `model` in place to `wanted` when it imports an older opset; checks the result against
 * `original` in onnxruntime. Returns undefined when no upgrade was needed. On failure `model` is left
 * exactly as it was.
 */
export async function upgradeForQuantize(model: ModelProto, original: ModelProto, wanted: number, names: NameScope, samples: Sample[] | undefined, seed: number): Promise<OpsetUpgrade | undefined> {
  const from = opsetVersion(model, '') ?? 1;
  if (wanted <= from) return undefined;
  const snapshot = snapshotGraphs(model);
  // When a node blocks the opset asked for, the newest milestone below it that converts is taken
  // (13: per-axis DequantizeLinear, 11: dynamic forms, 10: DequantizeLinear).
  let blocker: string | undefined;
  let r: UpgradeReport | undefined;
  for (const to of [wanted, 13, 11, 10].filter((v, i, all) => v > from && v <= wanted && all.indexOf(v) === i)) {
    r = upgradeOpset(model, to, names);
    if (!r.unconvertible.length) break;
    if (!blocker) {
      const first = r.unconvertible[0];
      const more = r.unconvertible.length > 1 ? ` and ${r.unconvertible.length - 1} more node(s)` : '';
      blocker = `${first.op} node "${first.node}" cannot be converted to opset ${to}: ${first.reason}${more}`;
    }
    r = undefined;
  }
  const summary: OpsetUpgrade = { from, to: from, wanted, converted: (r?.converted ?? []).map((c) => ({ op: c.op, at: c.at, what: c.what, nodes: c.nodes.length })) };
  if (blocker) summary.blocker = blocker;
  if (!r) return summary;
  // Without data, synthetic inputs of a few sizes are tried (syntheticCandidates): the first the
  // original runs on counts.
  const feeds = samples?.length ? samples.slice(0, 2).map((s) => [s.feeds]) : [syntheticCandidates(original, seed)];
  let check: Awaited<ReturnType<typeof compareOutputs>>;
  try {
    check = await compareOutputs(original, model, feeds);
  } catch (e) {
    check = { error: (e as Error).message };
  }
  if ('error' in check) {
    snapshot.restore();
    summary.converted = [];
    summary.blocker = `the model converted to opset ${r.to} ${check.error}`;
    return summary;
  }
  summary.to = r.to;
  summary.irVersion = r.irVersion;
  summary.check = check;
  if (check.outputs === 0) summary.unchecked = `the original model does not load or fails on every ${samples?.length ? 'calibration sample' : 'synthetic input'} tried in onnxruntime, so nothing could be compared`;
  return summary;
}

/** One line for the step's warnings. */
export function describeUpgrade(u: OpsetUpgrade): string {
  const ops = u.converted.map((c) => `${c.op}→${c.at} ×${c.nodes}`).join(', ') || 'no node (no signature changed)';
  const raised = u.to > u.from ? `the default opset was raised from ${u.from} to ${u.to} (IR ${u.irVersion?.from} → ${u.irVersion?.to}); converted ${ops}; ` : '';
  const checked = u.to <= u.from ? '' : u.unchecked ? `NOT verified: ${u.unchecked} (give calibration data to check it)` : `outputs equal the original's in onnxruntime on ${u.check?.samples} input(s) (max abs diff ${u.check?.maxAbsDiff.toExponential(2)})`;
  if (u.blocker) return `${raised}${checked}${raised ? '; ' : ''}the requested forms need opset ${u.wanted}, but ${u.blocker}: quantized with the forms opset ${u.to} allows (see the per-layer table)`;
  return `${raised}${checked}`;
}

/** Keeps each graph's node list, the opset imports and the IR version, to undo an upgrade. */
function snapshotGraphs(model: ModelProto) {
  const graphs = allGraphs(model).map((g) => [g, g.node.slice()] as [GraphProto, NodeProto[]]);
  const opsets = model.opsetImport.map((o) => ({ ...o }));
  const ir = model.irVersion;
  return {
    restore() {
      for (const [g, nodes] of graphs) g.node = nodes;
      model.opsetImport = opsets;
      model.irVersion = ir;
    },
  };
}

const ATOL = 1e-5;
const RTOL = 1e-4;

/**
 * Runs both models on each input (the first alternative of each that the original runs on); every
 * output must match (floats within ATOL + RTOL·|x|).
 */
async function compareOutputs(a: ModelProto, b: ModelProto, inputs: Record<string, ort.Tensor>[][]): Promise<{ samples: number; outputs: number; maxAbsDiff: number } | { error: string }> {
  const sa = await openSession(a, { optimization: 'basic' }).catch(() => undefined);
  if (!sa) return { samples: 0, outputs: 0, maxAbsDiff: 0 }; // the original does not load: nothing to compare
  let sb: Awaited<ReturnType<typeof openSession>>;
  try {
    sb = await openSession(b, { optimization: 'basic' });
  } catch (e) {
    await sa.session.release();
    return { error: `does not load in onnxruntime (${(e as Error).message})` };
  }
  let maxAbsDiff = 0;
  let outputs = 0;
  let samples = 0;
  try {
    for (const alternatives of inputs) {
      let ra: Record<string, ort.Tensor> | undefined;
      let f: Record<string, ort.Tensor> = {};
      for (const candidate of alternatives) {
        ra = await runSession(sa.session, candidate).catch(() => undefined);
        f = candidate;
        if (ra) break;
      }
      if (!ra) continue; // the original fails on this input: nothing to compare against
      samples++;
      const rb = await runSession(sb.session, f).catch((e: Error) => e);
      if (rb instanceof Error) return { error: `fails to run where the original runs (${rb.message})` };
      for (const [name, x] of Object.entries(ra)) {
        const y = rb[name];
        if (!y || y.type !== x.type || y.dims.join() !== x.dims.join()) return { error: `changes output "${name}" (type or shape)` };
        const d = maxDiff(x, y);
        if (d === undefined) return { error: `changes output "${name}"` };
        if (!(d.within)) return { error: `changes output "${name}" by up to ${d.max.toExponential(2)}` };
        maxAbsDiff = Math.max(maxAbsDiff, d.max);
        outputs++;
      }
    }
  } finally {
    await sa.session.release();
    await sb.session.release();
  }
  return { samples, outputs, maxAbsDiff };
}

function maxDiff(x: ort.Tensor, y: ort.Tensor): { max: number; within: boolean } | undefined {
  const a = x.data as ArrayLike<number | bigint | string>;
  const b = y.data as ArrayLike<number | bigint | string>;
  if (a.length !== b.length) return undefined;
  const float = x.type === 'float32' || x.type === 'float64';
  let max = 0;
  let within = true;
  for (let i = 0; i < a.length; i++) {
    if (!float) {
      if (a[i] !== b[i]) return undefined;
      continue;
    }
    const p = a[i] as number;
    const q = b[i] as number;
    if (Number.isNaN(p) || Number.isNaN(q)) {
      if (Number.isNaN(p) !== Number.isNaN(q)) return undefined;
      continue;
    }
    const d = Math.abs(p - q);
    if (d > max) max = d;
    if (d > ATOL + RTOL * Math.abs(p) && p !== q) within = false;
  }
  return { max, within };
}

/**
 * Random inputs (src/data/random.ts) of growing sizes: symbolic dims at 1, 16 and 512 with the first
 * (batch) dim at 1, then every symbolic dim at 16 and 512 (a batch named like another dim, as Silero
 * VAD's state [2, batch, 128] is, must agree with it). An STFT front end needs a long signal. Inputs
 * over 4M values and types random data cannot make are left out.
 */
function syntheticCandidates(model: ModelProto, seed: number): Record<string, ort.Tensor>[] {
  const specs = inputSpecs(model);
  const out: Record<string, ort.Tensor>[] = [];
  for (const [fill, batchToo] of [[1, false], [16, false], [512, false], [16, true], [512, true]] as const) {
    const shapes: Record<string, number> = {};
    for (const spec of specs) spec.dims.forEach((d, i) => typeof d === 'string' && (batchToo || i > 0) && (shapes[d] = fill));
    const size = specs.reduce((t, spec) => t + spec.dims.reduce<number>((n, d, i) => n * (typeof d === 'number' ? d : (shapes[d] ?? (i === 0 ? 1 : fill))), 1), 0);
    if (size > 4_000_000) continue;
    try {
      out.push(randomSamples(specs, 1, seed, shapes)[0].feeds);
    } catch {
      // an input type random data cannot make
    }
  }
  return out;
}
