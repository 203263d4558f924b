/**
 * The types of a static plan (static.ts plans, static-values.ts picks the values, static-emit.ts writes,
 * static-guard.ts measures): in a file of their own, so those files import them without a circle.
 */
import type { GraphProto, NodeProto } from '../../onnx/types.js';
import type { GraphIndex } from '../../onnx/graph.js';
import type { QuantizeStep } from './config.js';
import type { Target } from './select.js';
import type { ActivationParams } from './calibrate.js';

export type AnchorKind = 'conv' | 'gemm' | 'matmul';

export interface Anchor {
  node: NodeProto;
  /** The activation input (input 0) as the original graph names it. */
  input: string;
  target: Target;
  kind: AnchorKind;
}

/** A value carried as 8-bit integers. */
export interface QuantizedValue {
  /** The float value's name in the original graph. */
  name: string;
  /**
   * Where its integers come from: a QuantizeLinear after a graph input or a float op, after an anchor
   * (its output renamed, or read before a folded Relu), or a move op running on the 8-bit input.
   */
  source: 'input' | 'float' | 'anchor' | 'move' | 'qop';
  producer?: NodeProto;
  /** The clamp (Relu, Clip, Max / Min with a constant) folded into the producer's QuantizeLinear (source anchor or qop). */
  folded?: NodeProto;
  /** Its bounds: the range's lower end is exact, the upper one is min(calibrated, hi). */
  clamp?: { lo: number; hi: number };
  /** source move: the quantized value it moves (same scale and zero point). */
  from?: QuantizedValue;
  /** Set after calibration (shared with `from` for moves). */
  params?: ActivationParams;
  /** The axis its channels run along (1 for Conv activations, −1 for a MatMul / Gemm input). */
  channelAxis?: 1 | -1;
  /** After calibration: ValueStats.channelNoise at its scale. */
  channelNoise?: number;
}

/** An op onnxruntime runs as a QLinear kernel when its inputs come through DequantizeLinear and its output goes to a QuantizeLinear. */
export interface QOp {
  node: NodeProto;
  kind: 'unary' | 'binary' | 'concat';
  /** Per input: the quantized value it reads, or a float constant quantized for it (Add / Mul). */
  reads: ({ value: string } | { constant: string })[];
}

export interface StaticPlan {
  graph: GraphProto;
  index: GraphIndex;
  activations: 'uint8' | 'int8';
  calibrate: NonNullable<QuantizeStep['calibrate']>;
  anchors: Map<NodeProto, Anchor>;
  values: Map<string, QuantizedValue>;
  /** Ops run as integer kernels between the anchors (static-values.ts). */
  qops: Map<NodeProto, QOp>;
  /** Ops the activation guard keeps float. */
  disabled: Set<NodeProto>;
  /** Weights asked for static quantization that keep float activations, and why. */
  refused: Map<Target, string>;
}
