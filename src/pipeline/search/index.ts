/**
 * The precision search for one build (see search.ts): picks the data, runs the search, and writes what
 * it found into the quantize step's report (`totals.search`, and per layer its sensitivity and the
 * precision asked of it).
 *
 * Data: the calibration data when the recipe gives it (labels read with evaluate.labelKey), so the
 * evaluation data stays held out and the budget is checked on samples the search never saw; else the
 * evaluation data, with a warning that the figures are then not held out.
 */
import { CompressError } from '../../errors.js';
import type { Sample } from '../../data/types.js';
import { encodeModel, encodeModelToBytes } from '../../onnx/codec.js';
import type { ModelProto } from '../../onnx/types.js';
import type { Build, DataSpec } from '../../recipe/types.js';
import type { StepReport } from '../../transforms/types.js';
import type { ActivationSearch } from './activations.js';
import { accuracyLimitsOf, searchesActivations } from './applies.js';
import { searchPrecision, type SearchResult } from './search.js';

export { searchApplies, searchKey } from './applies.js';
export type { SearchResult, SearchPoint } from './search.js';

export interface BuildSearchContext {
  loadData(spec: DataSpec, labelKey?: string): Promise<Sample[]>;
  device: 'cpu' | 'gpu' | 'auto';
  /** Calibration samples as the steps get them (GPTQ needs them to build a candidate). */
  calibration?: Sample[];
  warn(message: string): void;
  log(message: string): void;
}

export async function searchForBuild(build: Build, model: ModelProto, ctx: BuildSearchContext): Promise<SearchResult> {
  const params = build.steps.quantize!;
  const budget = build.budget!;
  const limits = accuracyLimitsOf(budget);
  if (limits.length && !build.evaluate) {
    throw new CompressError('recipe', `${build.id}: budget ${limits.join(', ')} needs evaluate data to search the quantization precision`);
  }
  const spec = build.calibration ?? build.evaluate;
  if (!spec) throw new CompressError('recipe', `${build.id}: quantize.dtype auto with only maxBytes needs calibration or evaluate data`);
  const samples = await ctx.loadData(spec, build.evaluate?.labelKey);
  if (!samples.length) throw new CompressError('data', `${build.id}: no samples to search the quantization precision on`);
  const modelBytes = encodeModel(model).byteLength;
  // Static quantization with accuracy limits: activation precision per layer is searched too, on the
  // static plan calibrated as the step calibrates it (activations.ts).
  let act: ActivationSearch | undefined;
  if (searchesActivations(params, budget) && ctx.calibration?.length) {
    const { activationSearch } = await import('./activations.js');
    act = await activationSearch(model, params, ctx.calibration, ctx.log);
  }
  const result = await searchPrecision(act?.space.model ?? model, {
    params,
    budget,
    output: budget.output ?? build.evaluate?.output,
    ...(spec.carry && { carry: spec.carry }),
    samples,
    modelBytes,
    device: ctx.device,
    log: ctx.log,
    ...(act && { activations: act }),
    build: async (p) => {
      const { quantizeStep } = await import('../../transforms/quantize/index.js');
      // The check of a candidate is no delivery: strict judges the build the search chose, not its tries.
      if (p.floatActivations && p.strict) {
        const { strict: _, ...rest } = p;
        p = rest;
      }
      const r = await quantizeStep(p)(model, { file: build.source, original: model, ...(ctx.calibration && { calibration: ctx.calibration }), device: ctx.device, seed: 0, log: () => {} });
      return encodeModelToBytes(r.model);
    },
  });
  // Only a choice made on the evaluation data makes its figures optimistic (the requested precision kept is no choice).
  if (!build.calibration && Object.keys(result.assignment).length) {
    ctx.warn('the precision assignment was chosen on the evaluation data, so its figures are not held out (give calibration data to keep them apart)');
  }
  return result;
}

/** Puts the search's findings into the quantize step's report. */
export function recordSearch(report: StepReport, r: SearchResult): void {
  const byName = new Map(r.layers.map((l) => [l.name, l]));
  for (const layer of report.layers) {
    const s = byName.get(layer.name);
    if (s) Object.assign(layer, { sensitivity: s.damage, sensitivityFigure: s.figure });
  }
  report.totals ??= {};
  report.totals.search = {
    met: r.met,
    figure: r.figure,
    damage: r.damageKind,
    output: r.output,
    samples: r.samples,
    sensitivitySamples: r.sensitivitySamples,
    runs: r.runs,
    ms: r.ms,
    chosen: r.chosen,
    points: r.points,
    assignment: r.assignment,
    fixed: r.fixed,
    layers: r.layers,
    ...(r.activations && { activations: r.activations }),
  };
}

/** One line naming an assignment by how many layers take each precision, e.g. "int4:128 ×8, int8 ×2". */
export function describeAssignment(a: Record<string, string>): string {
  const n = new Map<string, number>();
  for (const p of Object.values(a)) n.set(p, (n.get(p) ?? 0) + 1);
  return [...n].map(([p, c]) => `${p} ×${c}`).join(', ');
}
