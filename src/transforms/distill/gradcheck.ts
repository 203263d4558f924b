/**
 * The device guard of logit distillation. A training graph that runs on a GPU execution provider
 * (CUDA, or ORT's WebGPU EP) is not guaranteed to compute the same gradients as on the CPU: on an
 * H100 with WebGPU the forward pass of both fixtures matched the CPU to ~1e-6, but the gradients of
 * the training graphs were off by a relative L2 difference of 1.15 (spam transformer) and 1.60
 * (Fashion-MNIST CNN) — some backward op computes wrong values there, and training on them would
 * silently produce a worse student.
 *
 * So before training on a non-CPU device, the gradients of the first batch are computed on that
 * device and on the CPU; when any parameter's gradient differs by more than GRADIENT_TOLERANCE
 * (relative L2, see compareGradients), the step warns (naming the device, the parameter and the
 * difference) and trains on the CPU instead.
 */
import type * as ort from 'onnxruntime-node';
import type { ModelProto } from '../../onnx/types.js';
import { openSession, runSession, type DeviceRequest } from '../../runtime/session.js';

/**
 * Largest relative L2 difference ‖g_device − g_cpu‖ / ‖g_cpu‖ of a parameter's gradient that still
 * counts as the same gradient: float32 reductions in another order differ by ~1e-6; the failures this
 * guards against are ~1.
 */
export const GRADIENT_TOLERANCE = 1e-3;

/**
 * Denominators are floored at this fraction of the largest gradient norm over all parameters, so that
 * a gradient that is zero (or ~0) on the CPU is not declared wrong for rounding noise of the device.
 */
export const NORM_FLOOR = 1e-6;

/**
 * ‖other − reference‖₂ / max(‖reference‖₂, floor). 0 when both are all zeros; Infinity when the lengths
 * differ, when `other` holds NaN / ±Infinity where the reference does not, or when the reference is
 * zero (below the floor 0) and `other` is not.
 */
export function relativeL2(reference: ArrayLike<number>, other: ArrayLike<number>, floor = 0): number {
  if (reference.length !== other.length) return Infinity;
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < reference.length; i++) {
    const a = reference[i];
    const b = other[i];
    if (!Number.isFinite(b)) {
      if (Object.is(a, b)) continue; // the same non-finite value on both
      return Infinity;
    }
    if (!Number.isFinite(a)) return Infinity;
    diff += (a - b) * (a - b);
    norm += a * a;
  }
  const denominator = Math.max(Math.sqrt(norm), floor);
  if (diff === 0) return 0;
  return denominator > 0 ? Math.sqrt(diff) / denominator : Infinity;
}

/** L2 norm of a gradient (non-finite entries ignored). */
function l2(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) if (Number.isFinite(v[i])) s += v[i] * v[i];
  return Math.sqrt(s);
}

export interface GradientDifference {
  param: string;
  /** Relative L2 difference of the parameter's gradient against the CPU's (Infinity: missing, wrong size or non-finite). */
  difference: number;
}

export interface GradientComparison {
  tolerance: number;
  /** Every parameter, worst first. */
  differences: GradientDifference[];
  /** Parameters over the tolerance, worst first. */
  mismatched: GradientDifference[];
  /** The worst parameter (undefined when there are none). */
  worst?: GradientDifference;
  ok: boolean;
}

/**
 * Compares the gradients of every parameter of `reference` (the CPU's) with `other` (the device's):
 * relative L2 difference per parameter (relativeL2, denominators floored at NORM_FLOOR × the largest
 * reference norm), a mismatch when above `tolerance`. A parameter missing from `other` is a mismatch.
 */
export function compareGradients(
  reference: ReadonlyMap<string, ArrayLike<number>>,
  other: ReadonlyMap<string, ArrayLike<number>>,
  tolerance = GRADIENT_TOLERANCE,
): GradientComparison {
  let largest = 0;
  for (const g of reference.values()) largest = Math.max(largest, l2(g));
  const floor = NORM_FLOOR * largest;
  const differences: GradientDifference[] = [];
  for (const [param, g] of reference) {
    const o = other.get(param);
    differences.push({ param, difference: o ? relativeL2(g, o, floor) : Infinity });
  }
  differences.sort((a, b) => b.difference - a.difference);
  const mismatched = differences.filter((d) => !(d.difference <= tolerance));
  return { tolerance, differences, mismatched, worst: differences[0], ok: mismatched.length === 0 };
}

// ----------------------------------------------------------------------------------- the guard

/** Something that runs a training graph: an onnxruntime session on some device (tests inject fakes). */
export interface GradientRunner {
  /** Where it runs: 'cpu', 'cuda', 'webgpu', … */
  readonly device: string;
  run(feeds: Record<string, ort.Tensor>, fetches: readonly string[]): Promise<Record<string, ort.Tensor>>;
  release(): Promise<void>;
}

/** Opens a runner for a training graph on a device. */
export type OpenRunner = (model: ModelProto, device: DeviceRequest) => Promise<GradientRunner>;

/**
 * The default runner: an onnxruntime session (openSession / runSession). openSession's warnings (auto
 * falling back to the CPU) are not repeated: the pipeline gives that one already.
 */
export async function openRunner(model: ModelProto, opts: { device?: DeviceRequest; intraOpThreads?: number }): Promise<GradientRunner> {
  const { session, device } = await openSession(model, opts);
  return {
    device,
    run: (feeds, fetches) => runSession(session, feeds, fetches),
    release: () => session.release(),
  };
}

export interface DeviceGradientCheck {
  /** The device that was checked. */
  device: string;
  tolerance: number;
  /** The worst parameter and its difference. */
  worst?: GradientDifference;
  /** Parameters over the tolerance, worst first (at most 10). */
  mismatched: GradientDifference[];
  /** Whether training moved to the CPU. */
  fellBack: boolean;
}

export interface GuardResult {
  /** The runner to train with: `runner` when it is on the CPU or agrees with it, else a CPU runner. */
  runner: GradientRunner;
  /** Absent when `runner` was on the CPU already. */
  check?: DeviceGradientCheck;
  /** Set when training moved to the CPU. */
  warning?: string;
}

const fmt = (d: number) => (Number.isFinite(d) ? d.toExponential(2) : String(d));

/** The warning of a failed check. */
export function mismatchWarning(device: string, comparison: GradientComparison): string {
  const worst = comparison.mismatched[0];
  const others = comparison.mismatched.length - 1;
  return (
    `distill: gradients on ${device} differ from the CPU's: parameter "${worst.param}" has a relative L2 difference of ${fmt(worst.difference)} ` +
    `(tolerance ${fmt(comparison.tolerance)})${others > 0 ? `, and ${others} more parameter${others > 1 ? 's' : ''} over it` : ''}; training on the CPU instead`
  );
}

/**
 * When `runner` is not on the CPU: runs `feeds` (the first batch) on it and on a CPU runner from
 * `openCpu`, compares the gradients (`gradients`: parameter → output name), and returns the runner to
 * train with. The runner that is not returned is released; on an error only the CPU runner opened
 * here is (the caller owns `runner`).
 */
export async function guardDevice(
  runner: GradientRunner,
  openCpu: () => Promise<GradientRunner>,
  feeds: Record<string, ort.Tensor>,
  gradients: ReadonlyMap<string, string>,
  tolerance = GRADIENT_TOLERANCE,
): Promise<GuardResult> {
  if (runner.device === 'cpu') return { runner };
  const fetches = [...gradients.values()];
  const cpu = await openCpu();
  let comparison: GradientComparison;
  try {
    const onDevice = await runner.run(feeds, fetches);
    const onCpu = await cpu.run(feeds, fetches);
    const pick = (out: Record<string, ort.Tensor>) =>
      new Map([...gradients].filter(([, o]) => out[o]).map(([p, o]) => [p, out[o].data as Float32Array]));
    comparison = compareGradients(pick(onCpu), pick(onDevice), tolerance);
  } catch (e) {
    await cpu.release();
    throw e;
  }
  const check: DeviceGradientCheck = { device: runner.device, tolerance, worst: comparison.worst, mismatched: comparison.mismatched.slice(0, 10), fellBack: !comparison.ok };
  if (comparison.ok) {
    await cpu.release();
    return { runner, check };
  }
  await runner.release();
  return { runner: cpu, check, warning: mismatchWarning(runner.device, comparison) };
}
