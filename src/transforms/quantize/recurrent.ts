/**
 * 4-bit weights that feed a recurrent state the model carries from call to call stay 8-bit unless a
 * precision assignment says otherwise.
 *
 * Which: an LSTM, GRU or RNN whose initial state is computed from an input of the model and whose final
 * state reaches an output of the model — a streaming model, which an app runs frame after frame, feeding
 * each call's state output into the next call (Silero VAD: `hn, cn → h, c`, v5 `stateN → state`;
 * wake-word and RNN-T models the same way). Every weight whose values flow into such an op (its own W and
 * R, and every layer before it: Dataflow in src/onnx/dataflow.ts, through If/Loop bodies) is written
 * 8-bit per channel under a 4-bit request. Layers after the recurrence, which only shape the output, keep
 * 4-bit; so does every layer of a model whose recurrent state starts at zero on each call (its error is
 * bounded by one call, which the evaluation's own metrics see).
 *
 * Why: a weight's rounding error is a fixed perturbation of its layer, applied to similar frames again and
 * again, so its effect on the state does not average out: the cell state integrates it, and with the state
 * carried there is no end to the integration. One call's output hardly moves (cosine over a clip stays
 * ≥ 0.996) while the state drifts until the VAD decides differently on some frames. 4-bit blocks of 32 err
 * ~16 times more than 8-bit per channel. Measured on Silero VAD, 600 held-out frames
 * (test/fixtures/audio/vad-heldout-16k.wav), state carried, only the named weight 4-bit (blocks of 32),
 * the rest float32: frames whose speech probability stays within 0.05 of float32's, and the largest
 * difference (int8 of the same weight: ≥ 99.8 %, ≤ 0.051 each):
 *
 *   v5 (LSTM weights float: read through Slice)   encoder Conv 0 [128,129,3]   98.3 %  0.465
 *                                                 encoder Conv 1 [64,128,3]    96.2 %  0.232
 *                                                 encoder Conv 2 [64,64,3]     88.3 %  0.705
 *                                                 encoder Conv 3 [128,64,3]    93.5 %  0.370
 *                                                 LSTM weight_ih / weight_hh   95.8 % / 96.8 %  0.181 / 0.269
 *                                                 decoder Conv [1,128,1] (after the LSTM)  100 %  0.048
 *   legacy (Convs already 8-bit: separable.ts)    LSTM 1 W / R [1,256,64]      99.2 % / 99.2 %  0.086 / 0.080
 *                                                 LSTM 2 W / R                 100 % / 98.5 %   0.048 / 0.096
 *
 * Whole model, a plain `dtype: int4`: v5 87.7 %, max 0.670 (every encoder Conv 4-bit); legacy 93.8 %, max
 * 0.188 (its LSTM weights 4-bit) — against int8 99.7 % / 0.055 and 100 % / 0.033. Blocks of 16 do not
 * rescue the encoder (Conv 0 alone: 98.2 %, 0.454). With this rule int4 measures as int8 (v5 99.7 % /
 * 0.055, legacy 100 % / 0.033): v5's int4 is its int8 byte for byte, legacy keeps 4-bit only in the LSTMs
 * of the branches that run when the state input is empty (zero initial state); q4f16 is smaller by what
 * float16 takes off the float rest. The manifest says so per layer.
 *
 * With data and a budget, the precision search measures each layer with the state carried
 * (`evaluate: { carry }`) and chooses each one's precision. An assignment's precision is delivered as
 * assigned; this rule only shapes what a plain `dtype: int4` delivers.
 */
import { Dataflow, type ValueRef } from '../../onnx/dataflow.js';
import type { ModelProto, NodeProto } from '../../onnx/types.js';
import { allGraphs } from '../../onnx/walk.js';
import type { Target } from './select.js';

const RECURRENT = new Set(['LSTM', 'GRU', 'RNN']);

export interface CarriedRecurrence {
  /** Recurrent ops whose state comes in as a model input and goes out as a model output. */
  recurrent: NodeProto[];
  /** Every node whose outputs flow into one of them, and the recurrent ops themselves. */
  feeding: Set<NodeProto>;
}

/** The recurrent ops of a model whose state is carried across calls, and what feeds them. */
export function carriedRecurrence(model: ModelProto): CarriedRecurrence {
  const none: CarriedRecurrence = { recurrent: [], feeding: new Set() };
  const main = model.graph;
  const isRecurrent = (n: NodeProto) => RECURRENT.has(n.opType ?? '') && (n.domain ?? '') === '';
  // Most models have none: no data-flow analysis for them.
  if (!main || !allGraphs(model).some((g) => g.node.some(isRecurrent))) return none;
  const df = new Dataflow(model);
  const candidates = [...df.nodes()].filter(({ node }) => isRecurrent(node));
  const returned = df.ancestors(main.output.map((o) => ({ graph: main, name: o.name ?? '' })));
  const recurrent: NodeProto[] = [];
  for (const { node, graph } of candidates) {
    // Y_h (and Y_c for LSTM) out; initial_h (and initial_c) in.
    const stateOut = node.output.slice(1, 3).filter(Boolean);
    const stateIn = node.input.slice(5, 7).filter(Boolean);
    if (!stateOut.some((name) => Dataflow.visited(returned, graph, name))) continue;
    if (!df.ancestors(stateIn.map((name) => ({ graph, name }))).inputs.size) continue;
    recurrent.push(node);
  }
  if (!recurrent.length) return none;
  const starts: ValueRef[] = recurrent.flatMap((node) => node.input.filter(Boolean).map((name) => ({ graph: df.graphOfNode(node)!, name })));
  const feeding = df.ancestors(starts).nodes;
  for (const n of recurrent) feeding.add(n);
  return { recurrent, feeding };
}

/**
 * For a model, the reason each target requested at 4-bit is written 8-bit by this rule (undefined: no
 * reason, 4-bit as asked). The graph is analysed on the first call.
 */
export function recurrentStateRule(model: ModelProto): (t: Target) => string | undefined {
  let found: { feeding: Set<NodeProto>; why: string } | undefined;
  return (t) => {
    if (!found) {
      const c = carriedRecurrence(model);
      const ops = [...new Set(c.recurrent.map((n) => n.opType))].join('/');
      found = { feeding: c.feeding, why: `it feeds the recurrent state carried from call to call (${c.recurrent.length} ${ops} with state in and out): 4-bit error accumulates frame after frame; a budget lets the precision search choose per layer` };
    }
    const f = found;
    return f.feeding.size && t.uses.some((u) => f.feeding.has(u.node)) ? f.why : undefined;
  };
}
