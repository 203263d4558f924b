/**
 * Activation precision as part of the budget search (static quantization: `quantize: { dtype: int8,
 * activations: uint8 | int8 }` with a budget that has accuracy limits). Every layer that can run as a
 * QLinear kernel gets one more choice, `int8+a8` (int8 weights, 8-bit activations), cheaper than `int8`
 * (int8 weights, float activations: weight-only for that layer) — cheaper in time, the same in bytes.
 *
 * The fake-quant session (fake.ts) gets the activation guard's probes (static-guard.ts): each value the
 * static plan can carry as integers reads x + m·(DQ(Q(x)) − x), with its calibrated scale and zero point
 * and a scalar mask input m. An assignment switches on the masks of exactly the values its `int8+a8`
 * layers carry as integers (the static plan made again for those layers: their inputs, Conv outputs,
 * the integer ops between them), so a layer's 8-bit activations are measured alone (sensitivity) and
 * together (the re-measures) in the same single session that measures weights, state carried for
 * stateful models as for weights. The search's greedy path then gives float activations back first to
 * the layers whose 8-bit activations cost most (a step of one byte, against weight steps of many), and
 * its re-measures and the real build's check decide how many.
 *
 * What the probes do not model: a float reader of a value another layer reads quantized reads the
 * float value (Q/DQ probes are per value, not per reader), and onnxruntime's integer kernels round their
 * requantization their own way. The real build's check on the search samples covers both.
 */
import { Tensor } from 'onnxruntime-node';
import type { Sample } from '../../data/types.js';
import { DataType } from '../../onnx/dtypes.js';
import type { ModelProto } from '../../onnx/types.js';
import type { Budget } from '../../eval/types.js';
import { SEARCH_REASON, type QuantizeStep } from '../../transforms/quantize/config.js';
import { addActivationProbes } from '../../transforms/quantize/static-guard.js';
import { activationSpace, type ActivationSpace } from '../../transforms/quantize/static-search.js';
import { accuracyLimitsOf } from './applies.js';
import { A8, type Assignment } from './fake.js';

export interface ActivationSearch {
  space: ActivationSpace;
  /** Adds the probes to the fake-quant session's model; returns their mask inputs. */
  probe(lifted: ModelProto): string[];
  /** Mask feeds for an assignment: 1 for each value its `int8+a8` layers carry as integers, else 0. */
  feeds(a: Assignment): Record<string, Tensor>;
  /** How many layers of an assignment have 8-bit activations. */
  eightBit(a: Assignment): number;
}

export async function activationSearch(model: ModelProto, params: QuantizeStep, calibration: Sample[], log: (m: string) => void = () => {}): Promise<ActivationSearch> {
  const t0 = performance.now();
  const space = await activationSpace(model, params, calibration, { intraOpThreads: 1 });
  log(`activations: ${space.layers.length} layers can run with 8-bit ${space.activations} activations (${space.measured.length} values calibrated on ${calibration.length} samples, ${Math.round(performance.now() - t0)} ms)${space.refused.size ? `; ${space.refused.size} cannot` : ''}`);
  const layers = new Set(space.layers);
  let masks = new Map<string, string>();
  const one = new Tensor('float32', Float32Array.of(1), []);
  const zero = new Tensor('float32', Float32Array.of(0), []);
  const eightBitSet = (a: Assignment) => new Set([...a].filter(([n, c]) => c === A8 && layers.has(n)).map(([n]) => n));
  return {
    space,
    probe(lifted) {
      masks = addActivationProbes(lifted, space.measured, space.activations === 'uint8' ? DataType.UINT8 : DataType.INT8);
      return [...masks.values()];
    },
    feeds(a) {
      const on = new Set(space.valuesFor(eightBitSet(a)));
      const f: Record<string, Tensor> = {};
      for (const [value, mask] of masks) f[mask] = on.has(value) ? one : zero;
      return f;
    },
    eightBit: (a) => eightBitSet(a).size,
  };
}

/** The reason a layer keeps float activations, with the figures its 8-bit activations had alone. */
export function floatReason(figure: string, alone: number | undefined, without: number | undefined, samples: number, budget: Budget): string {
  const f = (x: number | undefined) => {
    if (x === undefined || !Number.isFinite(x)) return '?';
    if (figure === 'accuracyDrop') return x.toFixed(4);
    // Near 1: enough digits to show two of 1 − x (0.99520, 0.99999542).
    if (figure === 'cosine' || figure === 'agreement') return x.toFixed(Math.min(8, Math.max(4, 2 - Math.floor(Math.log10(Math.max(1e-12, 1 - x))))));
    return x.toPrecision(3);
  };
  const limits = accuracyLimitsOf(budget).map((k) => `${k} ${budget[k]}`).join(', ');
  return `${SEARCH_REASON} (its 8-bit activations alone: ${figure} ${f(alone)}, ${f(without)} with float ones, on ${samples} search samples; budget ${limits})`;
}
