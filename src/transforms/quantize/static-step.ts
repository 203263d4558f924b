/**
 * The quantize step's side of static quantization (static.ts plans and calibrates, static-emit.ts
 * writes): prepared before any weight is rewritten, told each weight's scales as it is quantized,
 * emitted with the other graph edits, then summed up in the step report.
 */
import { CompressError } from '../../errors.js';
import type { ModelProto } from '../../onnx/types.js';
import type { StepContext, StepReport } from '../types.js';
import { SEARCH_REASON, STATIC_GUARD_COSINE, type QuantizeStep } from './config.js';
import type { GuardReport } from './static-guard.js';
import type { DequantizeOptions } from './dq.js';
import type { GraphEdits } from './edits.js';
import type { Plan } from './forms.js';
import type { Target } from './select.js';
import { calibrateStatic, keepLayersFloat, planStatic, type Anchor, type StaticPlan } from './static.js';
import { emitStatic, type StaticEmitStats } from './static-emit.js';
import { channelView, type WeightQuant } from './weights.js';
import { fitBias } from './static-bias.js';

export class StaticQuantization {
  private readonly scales = new Map<Target, Float32Array>();
  private readonly anchored: Set<Target>;
  private emitted?: StaticEmitStats;
  /** Weight channels whose scale was widened so that their bias fits int32. */
  private widened = 0;
  private constructor(
    readonly plan: StaticPlan,
    private readonly params: QuantizeStep,
    private readonly samples: number,
    private readonly calibrationMs: number,
    private readonly guard?: GuardReport,
  ) {
    this.anchored = new Set([...plan.anchors.values()].map((a) => a.target));
  }

  /** Plans and calibrates on the model before any weight is rewritten. */
  static async prepare(model: ModelProto, targets: Target[], plans: Map<Target, Plan>, params: QuantizeStep, ctx: StepContext, opts: { intraOpThreads?: number; batch?: number }): Promise<StaticQuantization> {
    // The recipe loader rejects activations without calibration data (at the recipe line); this is data with no samples.
    if (!ctx.calibration?.length) throw new CompressError('data', 'quantize: activations got no calibration samples', { file: ctx.file });
    const t0 = performance.now();
    const plan = planStatic(model, targets, plans, params);
    // The budget search decided which layers keep float activations: that replaces the guard.
    if (params.floatActivations) keepLayersFloat(model, plan, params.floatActivations);
    ctx.log(`static ${params.activations}: calibrating ${plan.values.size} activations (${plan.calibrate}) over ${ctx.calibration.length} samples`);
    await calibrateStatic(model, plan, ctx.calibration, params, opts);
    const { guardStatic } = await import('./static-guard.js');
    const floor = params.floatActivations ? 0 : (params.activationCosine ?? STATIC_GUARD_COSINE);
    const guard = await guardStatic(model, plan, ctx.calibration, floor, { intraOpThreads: opts.intraOpThreads, log: ctx.log });
    return new StaticQuantization(plan, params, ctx.calibration.length, performance.now() - t0, guard);
  }

  /** Whether the weight belongs to a fused group (its DequantizeLinear then carries an explicit zero point). */
  has(t: Target): boolean {
    return this.anchored.has(t);
  }

  /** How a weight's DequantizeLinear is written: explicit zero point for the fused groups, and a Gemm's
   *  [N, K] weight (transB = 1) stored as [K, N] (emitStatic turns transB off). */
  dequantizeOptions(t: Target): DequantizeOptions {
    if (!this.has(t)) return {};
    return { zeroPoint: true, transpose: t.kind === 'gemm' && t.channelAxis === 0 && t.shape.length === 2 };
  }

  /**
   * Records the scales a weight was quantized with (its bias is quantized with them), after widening
   * the scale of any output channel whose bias would not fit int32 (fitBias).
   */
  weightQuantized(t: Target, q: WeightQuant): void {
    if (!this.has(t)) return;
    const cv = channelView(q, t.channelAxis);
    if (!cv) throw new Error(`static quantization: weight "${t.weight}" is not per-channel or per-tensor`);
    if (!cv.perTensor && q.layout === 'axis') this.widened += fitBias(t, q, this.plan);
    this.scales.set(t, cv.scales.slice());
  }

  emit(edits: GraphEdits): void {
    this.emitted = emitStatic(this.plan, edits, (t) => this.scales.get(t)!);
  }

  /**
   * Per layer: the activation type delivered (or float32 and why), the calibration method and the
   * input's range; in totals what was written; one warning when any layer keeps float activations.
   */
  report(report: StepReport): void {
    const anchorOf = new Map<string, Anchor>();
    for (const a of this.plan.anchors.values()) if (!anchorOf.has(a.target.name)) anchorOf.set(a.target.name, a);
    const refused = new Map([...this.plan.refused].map(([t, why]) => [t.name, why]));
    for (const l of report.layers) {
      const a = anchorOf.get(l.name);
      if (a) {
        const p = this.plan.values.get(a.input)?.params;
        Object.assign(l, { activations: this.plan.activations, calibrate: this.plan.calibrate, ...(p && { inputRange: [p.lo, p.hi], inputScale: p.scale }) });
      } else if (refused.has(l.name)) {
        Object.assign(l, { activations: 'float32', activationsReason: refused.get(l.name) });
      }
    }
    const e = this.emitted!;
    report.totals!.static = {
      activations: this.plan.activations,
      calibrate: this.plan.calibrate,
      ...(this.params.percentile !== undefined && { percentile: this.params.percentile }),
      samples: this.samples,
      layers: this.anchored.size,
      floatActivationLayers: this.plan.refused.size,
      quantizedValues: this.plan.values.size,
      quantizeNodes: e.quantizeNodes,
      dequantizeNodes: e.dequantizeNodes,
      foldedRelu: e.foldedRelu,
      movedOps: e.movedOps,
      ...(Object.keys(e.integerOps).length && { integerOps: e.integerOps }),
      ...(e.clampedBias && { clampedBias: e.clampedBias }),
      ...(this.widened && { widenedChannels: this.widened }),
      calibrationMs: this.calibrationMs,
      ...(this.guard && { guard: this.guard }),
    };
    if (e.clampedBias) report.warnings.push(`static quantization: ${e.clampedBias} bias values clamped to the int32 range (a weight channel with a scale near 0)`);
    if (this.plan.refused.size) {
      const total = this.plan.refused.size + this.anchored.size;
      // The search's reasons carry each layer's own figures (the per-layer table has them): named once here.
      const why = [...new Set([...this.plan.refused.values()].map((r) => (r.startsWith(SEARCH_REASON) ? SEARCH_REASON : r)))].join('; ');
      const line = `static quantization: ${this.plan.refused.size} of ${total} layers keep float activations (${why}); see the per-layer table`;
      if (this.params.strict) throw new CompressError('compress', `quantize.strict: ${line}`);
      report.warnings.push(line);
    }
  }
}
