/**
 * The budget picks the precision: per-layer sensitivity, then a greedy path from the cheapest assignment
 * to the most accurate one, re-measured on the whole model where it matters.
 *
 * 1. Sensitivity: each searchable layer alone at each candidate precision (every other layer float32),
 *    one fake-quantized run over the search samples each (fake.ts): the error it adds, as the budget's
 *    own figures and as a continuous "damage" (KL for class outputs, 1 − cosine or relRms² otherwise).
 * 2. Path: start with every layer at its cheapest candidate; repeatedly widen the layer whose next
 *    precision removes the most damage per byte added (layer damages are taken as additive) until no
 *    widening helps. Each prefix of the path is an assignment, bytes rising, predicted damage falling.
 * 3. Re-measure: the whole model under path assignments, by bisection for the shortest prefix that
 *    meets the accuracy limits (monotone along the path, as the predictions are), or the longest that
 *    fits maxBytes. With dtype auto the uniform int4 / int8 / float16 assignments are measured too and
 *    the smallest passing assignment of all wins.
 * The caller builds the chosen assignment for real and evaluates it on the evaluation data.
 */
import type { Sample } from '../../data/types.js';
import type { Budget } from '../../eval/types.js';
import type { ModelProto } from '../../onnx/types.js';
import type { LayerPrecision, QuantizeStep } from '../../recipe/types.js';
import type { DeviceRequest } from '../../runtime/session.js';
import { predictedEnv } from '../../transforms/quantize/delivery.js';
import { PRECISIONS, requestedPrecision } from '../../transforms/quantize/precision.js';
import { floatReason, type ActivationSearch } from './activations.js';
import { A8, FakeQuantModel, type Assignment, type RunOutputs, type SearchChoice, type SearchLayer } from './fake.js';
import { damageKind, figuresOf, hasAccuracyLimits, meetsAccuracy, type Figures } from './figures.js';

export interface SearchOptions {
  params: QuantizeStep;
  budget: Budget;
  /** The output the budget applies to (default: the model's first). */
  output?: string;
  samples: Sample[];
  /** Encoded bytes of the model entering the quantize step (for the total size estimate). */
  modelBytes: number;
  device?: DeviceRequest;
  /** Candidate precisions (default: auto → int4:128, int4:32, int8, float16, float32; else the requested one and wider). */
  candidates?: LayerPrecision[];
  minElements?: number;
  /**
   * Builds an assignment for real (the quantize step with these parameters, encoded): the search then
   * checks its choice with the real graph on the search samples, and moves on along the path while the
   * real numbers miss (int8 DequantizeLinear → MatMul is fused by ORT into kernels that round differently).
   */
  build?: (params: QuantizeStep) => Promise<Uint8Array>;
  /** Fraction of each continuous limit's slack kept in reserve (default 0.2: aim at 1 − 0.8·(1 − minCosine), 0.8·maxRelRms, …). */
  margin?: number;
  /**
   * Stateful models: output → input carried from sample to sample (the samples are then one sequence).
   * Every run, sensitivity included, carries its own model's state (fake.ts).
   */
  carry?: Record<string, string>;
  /** Samples the per-layer sensitivity runs use (default: the first 64 of `samples`; the whole-model re-measures use all). */
  sensitivitySamples?: number;
  /**
   * Static quantization: activation precision per layer is searched too (activations.ts). `model` must
   * then be the activation space's model.
   */
  activations?: ActivationSearch;
  log?: (message: string) => void;
}

/** One assignment the search measured. */
export interface SearchPoint {
  label: string;
  /** Estimated output bytes. */
  bytes: number;
  damage: number;
  accuracyDrop?: number;
  agreement: number;
  cosine: number;
  relRms: number;
  maxAbs: number;
  /** Meets the accuracy limits (maxBytes aside). */
  accurate: boolean;
  meets: boolean;
  /** Static quantization: layers with 8-bit activations. */
  activations8?: number;
}

export interface LayerSensitivity {
  name: string;
  /** Per candidate: estimated stored bytes, damage alone, and the budget's headline figure alone. */
  bytes: Partial<Record<SearchChoice, number>>;
  damage: Partial<Record<SearchChoice, number>>;
  figure: Partial<Record<SearchChoice, number>>;
  chosen: SearchChoice;
}

export interface SearchResult {
  /** The step parameters to build with (layers filled in); the requested ones when they already meet the budget. */
  params: QuantizeStep;
  assignment: Record<string, SearchChoice>;
  met: boolean;
  /** Index of the chosen assignment in points. */
  chosen: number;
  points: SearchPoint[];
  layers: LayerSensitivity[];
  /** Layers the step quantizes that the search cannot set (none since subgraph and Constant-node weights are lifted, fake.ts). */
  fixed: string[];
  /** The headline figure: the first of the budget's limits. */
  figure: 'accuracyDrop' | 'agreement' | 'cosine' | 'relRms' | 'maxAbs';
  damageKind: 'kl' | 'cosine' | 'relRms';
  output: string;
  samples: number;
  sensitivitySamples: number;
  runs: number;
  ms: { sensitivity: number; search: number };
  /** Static quantization: the activation type, the layers that could have 8-bit activations and how many of them the chosen assignment gives them. */
  activations?: { type: 'uint8' | 'int8'; layers: number; eightBit: number; float: number; cannot: number };
}

const AUTO: LayerPrecision[] = ['int4:128', 'int4:32', 'int8', 'float16', 'float32'];

function headline(b: Budget): SearchResult['figure'] {
  if (b.maxAccuracyDrop !== undefined) return 'accuracyDrop';
  if (b.minAgreement !== undefined) return 'agreement';
  if (b.minCosine !== undefined) return 'cosine';
  if (b.maxRelRms !== undefined) return 'relRms';
  if (b.maxAbsError !== undefined) return 'maxAbs';
  return 'relRms';
}

function figureOf(f: Figures, which: SearchResult['figure']): number {
  if (which === 'accuracyDrop') return f.refAccuracy !== undefined && f.accuracy !== undefined ? f.refAccuracy - f.accuracy : NaN;
  return f.metrics[which];
}

/** Candidate precisions for a recipe block: auto → all; else the requested one and the wider ones. */
export function candidatesFor(params: QuantizeStep): LayerPrecision[] {
  if (params.dtype === 'auto') {
    const block = typeof params.granularity === 'number' ? (`int4:${params.granularity}` as LayerPrecision) : 'int4:32';
    return [...new Set<LayerPrecision>(['int4:128', block, 'int8', 'float16', 'float32'])].sort((a, b) => PRECISIONS.indexOf(a) - PRECISIONS.indexOf(b));
  }
  const r = requestedPrecision(params);
  if (!r) return ['float16', 'float32'];
  return [r, ...(['int8', 'float16', 'float32'] as const).filter((p) => PRECISIONS.indexOf(p) > PRECISIONS.indexOf(r))];
}

export async function searchPrecision(model: ModelProto, opts: SearchOptions): Promise<SearchResult> {
  const { params, budget, samples } = opts;
  const t0 = performance.now();
  const log = opts.log ?? (() => {});
  const candidates = opts.candidates ?? (params.dtype === 'auto' ? AUTO : candidatesFor(params));
  const nSens = Math.min(samples.length, Math.max(1, opts.sensitivitySamples ?? 64));
  const sensSamples = samples.slice(0, nSens);
  const act = opts.activations;
  const fq = await FakeQuantModel.open(model, params, candidates, samples, { device: opts.device, minElements: opts.minElements, ...(opts.carry && { carry: opts.carry }), ...(act && { probe: act.probe }) });
  // The same session, fed only the first nSens samples (their own batch), for the per-layer runs.
  const fqSens = nSens < samples.length ? fq.withSamples(sensSamples) : fq;
  try {
    const output = opts.output ?? fq.outputs[0];
    const env = predictedEnv(model);
    // int8+a8 is int8 weights (and 8-bit activations, switched on by act.feeds).
    const feedOf = (l: SearchLayer, p: SearchChoice) => fq.weightFeed(l, p === A8 ? 'int8' : p, params, env);
    const extra = (a: Assignment) => act?.feeds(a) ?? {};
    const ref = await fq.run(new Map(), feedOf, extra(new Map()));
    const refSens = fqSens === fq ? ref : await fqSens.run(new Map(), feedOf, extra(new Map()));
    const measure = async (a: Assignment): Promise<Figures> => figuresOf(ref, await fq.run(a, feedOf, extra(a)), output, samples, budget);
    const measureAlone = async (a: Assignment): Promise<Figures> => figuresOf(refSens, await fqSens.run(a, feedOf, extra(a)), output, sensSamples, budget);
    // Static: the layers that can run as QLinear kernels get the int8+a8 choice, as large as int8.
    const a8Layers = new Set(act?.space.layers ?? []);
    for (const l of fq.layers) {
      if (!a8Layers.has(l.name) || l.bytes.int8 === undefined) continue;
      l.bytes[A8] = l.bytes.int8;
      l.delivered[A8] = `int8+${act!.space.activations}`;
    }
    const rank = (p: SearchChoice) => (p === A8 ? -1 : PRECISIONS.indexOf(p));
    const fp32Bytes = fq.layers.reduce((s, l) => s + l.elements * 4, 0);
    const base = Math.max(0, opts.modelBytes - fp32Bytes);
    const which = headline(budget);
    // Continuous limits are aimed at with a margin: the evaluation runs other samples through the real
    // quantized graph, so a choice that only just meets a limit here can miss it there.
    const margin = opts.margin ?? 0.2;
    const aim: Budget = {
      ...budget,
      ...(budget.minCosine !== undefined && { minCosine: 1 - (1 - budget.minCosine) * (1 - margin) }),
      ...(budget.maxRelRms !== undefined && { maxRelRms: budget.maxRelRms * (1 - margin) }),
      ...(budget.maxAbsError !== undefined && { maxAbsError: budget.maxAbsError * (1 - margin) }),
    };
    const accuracyLimits = hasAccuracyLimits(budget);

    // Each layer's candidates, cheapest first, without ones that deliver the same as a cheaper one.
    const optionsOf = new Map<SearchLayer, SearchChoice[]>();
    for (const l of fq.layers) {
      const seen = new Set<string>();
      const mine: SearchChoice[] = l.bytes[A8] !== undefined ? [A8, ...candidates] : [...candidates];
      const opts2 = mine.sort((a, b) => l.bytes[a]! - l.bytes[b]! || rank(a) - rank(b)).filter((p) => {
        const d = l.delivered[p]!;
        if (seen.has(d)) return false;
        seen.add(d);
        return true;
      });
      optionsOf.set(l, opts2);
    }

    // 1. Sensitivity.
    log(`sensitivity: ${fq.layers.length} layers × ${candidates.length - (candidates.includes('float32') ? 1 : 0)} precisions${act ? ` (and ${a8Layers.size} with 8-bit activations)` : ''} on ${nSens} samples`);
    const sens: LayerSensitivity[] = [];
    for (const l of fq.layers) {
      const s: LayerSensitivity = { name: l.name, bytes: {}, damage: {}, figure: {}, chosen: optionsOf.get(l)![0] };
      for (const p of optionsOf.get(l)!) {
        s.bytes[p] = l.bytes[p];
        if (p === 'float32') {
          s.damage[p] = 0;
          s.figure[p] = which === 'cosine' || which === 'agreement' ? 1 : 0;
          continue;
        }
        const f = await measureAlone(new Map([[l.name, p]]));
        s.damage[p] = f.damage;
        s.figure[p] = figureOf(f, which);
      }
      sens.push(s);
    }
    const tSens = performance.now();

    // 2. The greedy path.
    const cur = new Map(fq.layers.map((l) => [l, 0]));
    const assignmentOf = () => new Map(fq.layers.map((l) => [l.name, optionsOf.get(l)![cur.get(l)!]]));
    const path: Assignment[] = [assignmentOf()];
    const sensOf = new Map(fq.layers.map((l, i) => [l, sens[i]]));
    for (;;) {
      let best: { l: SearchLayer; j: number; ratio: number } | undefined;
      for (const l of fq.layers) {
        const o = optionsOf.get(l)!;
        const s = sensOf.get(l)!;
        const i = cur.get(l)!;
        for (let j = i + 1; j < o.length; j++) {
          const gain = s.damage[o[i]]! - s.damage[o[j]]!;
          const cost = Math.max(1, l.bytes[o[j]]! - l.bytes[o[i]]!);
          if (!(gain > 0)) continue;
          const ratio = gain / cost;
          if (!best || ratio > best.ratio) best = { l, j, ratio };
        }
      }
      if (!best) break;
      cur.set(best.l, best.j);
      path.push(assignmentOf());
    }
    // A path that never reaches float32 everywhere ends with all-float32 as the safe last resort.
    const widest: Assignment = new Map(fq.layers.map((l) => [l.name, 'float32']));
    if (candidates.includes('float32')) path.push(widest);

    // 3. Re-measure.
    const points: SearchPoint[] = [];
    const measured = new Map<string, { point: number; a: Assignment }>();
    const keyOf = (a: Assignment) => fq.layers.map((l) => a.get(l.name)).join(',');
    const bytesOf = (a: Assignment) => base + fq.bytesOf(a);
    const test = async (a: Assignment, label: string): Promise<SearchPoint> => {
      const k = keyOf(a);
      const hit = measured.get(k);
      if (hit) return points[hit.point];
      const f = await measure(a);
      const bytes = bytesOf(a);
      const p: SearchPoint = {
        label,
        bytes,
        damage: f.damage,
        ...(f.accuracy !== undefined && { accuracyDrop: f.refAccuracy! - f.accuracy }),
        agreement: f.metrics.agreement,
        cosine: f.metrics.cosine,
        relRms: f.metrics.relRms,
        maxAbs: f.metrics.maxAbs,
        accurate: meetsAccuracy(f, aim),
        meets: false,
        ...(act && { activations8: act.eightBit(a) }),
      };
      p.meets = p.accurate && (budget.maxBytes === undefined || bytes <= budget.maxBytes);
      measured.set(k, { point: points.length, a });
      points.push(p);
      log(`${label}: ${bytes} bytes, ${which} ${figureOf(f, which).toPrecision(4)}${p.meets ? ' (meets the budget)' : ''}`);
      return p;
    };
    const uniform = (p: SearchChoice): Assignment => new Map(fq.layers.map((l) => [l.name, optionsOf.get(l)!.includes(p) ? p : optionsOf.get(l)![0]]));

    // Static: the layers whose activations the assignment keeps float, each with its figures alone.
    const sensByName = new Map(sens.map((s) => [s.name, s]));
    const floatActivations = (a: Assignment): Record<string, string> => {
      const r: Record<string, string> = {};
      for (const [name, c] of a) {
        const s = sensByName.get(name);
        if (c === 'int8' && a8Layers.has(name) && s) r[name] = floatReason(which, s.figure[A8], s.figure.int8, nSens, budget);
      }
      return r;
    };
    const paramsOf = (a: Assignment): QuantizeStep => ({
      ...params,
      ...(params.dtype === 'auto' && { dtype: 'int8', granularity: 'per-channel' }),
      layers: Object.fromEntries([...a].map(([n, c]) => [n, c === A8 ? 'int8' : c])),
      ...(act && { floatActivations: floatActivations(a) }),
    });
    // The requested build: with static activations searched, all 8-bit and the guard off.
    const requestedParams: QuantizeStep = act ? { ...params, floatActivations: {} } : params;
    // Which of two passing points is better: fewer bytes; for static quantization first more layers
    // with 8-bit activations (what makes the model faster; their bytes are the same as int8's).
    const better = (i: number, j: number): boolean => {
      const p = points[i];
      const q = points[j];
      if (act && p.activations8 !== q.activations8) return (p.activations8 ?? 0) > (q.activations8 ?? 0);
      return p.bytes < q.bytes;
    };
    const real = new Set<number>();
    /** Re-measures point i with the real graph of its assignment; true when it still meets the budget. */
    const verify = async (i: number, a: Assignment, p2: QuantizeStep = paramsOf(a)): Promise<boolean> => {
      const built = await opts.build!(p2);
      const f = figuresOf(ref, await fq.runModel(built, opts.device), output, samples, budget);
      real.add(i);
      const p = points[i];
      p.bytes = built.byteLength;
      p.label += ' (built)';
      p.damage = f.damage;
      Object.assign(p, { agreement: f.metrics.agreement, cosine: f.metrics.cosine, relRms: f.metrics.relRms, maxAbs: f.metrics.maxAbs }, f.accuracy !== undefined && { accuracyDrop: f.refAccuracy! - f.accuracy });
      p.accurate = meetsAccuracy(f, aim);
      p.meets = p.accurate && (budget.maxBytes === undefined || p.bytes <= budget.maxBytes);
      log(`built ${p.label}: ${which} ${figureOf(f, which).toPrecision(4)}${p.meets ? ' (meets the budget)' : ''}`);
      return p.meets;
    };

    let bytesChoice = -1;
    const requested: SearchChoice | undefined = act ? A8 : requestedPrecision(params);
    if (requested) {
      const label = act ? `int8, ${act.space.activations} activations (requested)` : `${requested} (requested)`;
      const first = await test(uniform(requested), label);
      if (first.meets && (!opts.build || (await verify(0, uniform(requested), requestedParams)))) return finish(requestedParams, {}, true, 0);
    } else {
      for (const p of candidates) if (p !== 'float32') await test(uniform(p), `${p} everywhere`);
    }
    const accurate = async (k: number) => (await test(path[k], `mixed, step ${k}/${path.length - 1}`)).accurate;
    if (accuracyLimits) {
      // Shortest prefix that meets the budget: bisection on [lo, hi].
      let lo = 0;
      let hi = path.length - 1;
      if (await accurate(hi)) {
        if (await accurate(lo)) hi = lo;
        while (hi - lo > 1) {
          const mid = (lo + hi) >> 1;
          if (await accurate(mid)) hi = mid;
          else lo = mid;
        }
      }
    } else if (budget.maxBytes !== undefined) {
      // Longest prefix under the byte limit (estimated), then shorter ones while the real build is over it.
      let k = 0;
      while (k + 1 < path.length && bytesOf(path[k + 1]) <= budget.maxBytes) k++;
      for (; k >= 0; k--) {
        await accurate(k);
        if (!opts.build) break;
        const i = measured.get(keyOf(path[k]))!.point;
        if (real.has(i) ? points[i].meets : await verify(i, path[k])) {
          bytesChoice = i;
          break;
        }
      }
    }
    // The smallest passing assignment, checked with the real graph when the caller can build one; a
    // miss there marks the point and the search moves on along the path.
    for (let guard = 0; opts.build && accuracyLimits && guard < 6; guard++) {
      let best = -1;
      points.forEach((p, i) => {
        if (p.meets && (best < 0 || better(i, best))) best = i;
      });
      if (best < 0 || real.has(best)) break;
      const a = [...measured.values()].find((m) => m.point === best)!.a;
      if (await verify(best, a)) break;
      // Next: the path's first untried assignment after this one.
      const k = path.findIndex((x) => keyOf(x) === keyOf(a));
      for (let j = Math.max(k + 1, 1); j < path.length; j++) {
        if (!measured.has(keyOf(path[j]))) {
          await accurate(j);
          break;
        }
      }
    }
    // Accuracy limits: the smallest passing assignment; maxBytes alone: the most accurate one under it
    // (the built one, whose bytes are real).
    let chosen = bytesChoice;
    if (chosen < 0) {
      points.forEach((p, i) => {
        if (!p.meets) return;
        if (chosen < 0 || (accuracyLimits ? better(i, chosen) : p.damage < points[chosen].damage)) chosen = i;
      });
    }
    const met = chosen >= 0;
    if (!met) {
      // Closest to the budget: the smallest accurate one (too big), else the most accurate one that
      // fits maxBytes, else the smallest.
      const all = points.map((_, i) => i);
      const accurate = all.filter((i) => points[i].accurate);
      const fits = all.filter((i) => budget.maxBytes === undefined || points[i].bytes <= budget.maxBytes);
      if (accurate.length) chosen = accurate.reduce((b, i) => (better(i, b) ? i : b));
      else if (fits.length) chosen = fits.reduce((b, i) => (points[i].damage < points[b].damage ? i : b));
      else chosen = all.reduce((b, i) => (points[i].bytes < points[b].bytes ? i : b));
    }
    const a = [...measured.values()].find((m) => m.point === chosen)!.a;
    const assignment = Object.fromEntries(a);
    for (const s of sens) s.chosen = a.get(s.name)!;
    // Layers the search cannot set follow dtype: auto gives them int8.
    return finish(paramsOf(a), assignment, met, chosen);

    function finish(p: QuantizeStep, assignment: Record<string, SearchChoice>, met: boolean, chosen: number): SearchResult {
      if (!Object.keys(assignment).length) for (const s of sens) s.chosen = optionsOf.get(fq.layers.find((l) => l.name === s.name)!)![0];
      const t1 = performance.now();
      const eightBit = act ? sens.filter((s) => s.chosen === A8).length : 0;
      return {
        params: p,
        assignment,
        met,
        chosen,
        points,
        layers: sens,
        fixed: fq.fixed,
        figure: which,
        damageKind: damageKind(budget, lastDim(ref, output)),
        output,
        samples: samples.length,
        sensitivitySamples: nSens,
        runs: fq.runs + (fqSens === fq ? 0 : fqSens.runs),
        ms: { sensitivity: Math.round(tSens - t0), search: Math.round(t1 - tSens) },
        ...(act && { activations: { type: act.space.activations, layers: a8Layers.size, eightBit, float: a8Layers.size - eightBit, cannot: act.space.refused.size } }),
      };
    }
  } finally {
    await fq.close();
  }
}

function lastDim(r: RunOutputs, output: string): number {
  const d = r.dims.get(output)?.[0] ?? [];
  return d.length ? d[d.length - 1] : 1;
}
