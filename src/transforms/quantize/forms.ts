/**
 * Which graph form each quantized weight takes, from the recipe's `target` (and `format` when the
 * recipe forces one), the op and the model's opset.
 *
 *   form            ops written                                                  bits  for
 *   dq              DequantizeLinear(W_q, scale, zp) → op (weight-only, "QDQ")  8, 4  every kind; 4-bit needs opset 21
 *   matmulnbits     com.microsoft MatMulNBits                                    8, 4  MatMul, Gemm (transA = 0)
 *   matmulinteger   DynamicQuantizeLinear(A) → MatMulInteger → Cast → Mul         8    MatMul, Gemm (transA = 0)
 *   convinteger     DynamicQuantizeLinear(X) → ConvInteger → Cast → Mul (+ Add)   8    Conv, symmetric weights
 *   gatherblock     com.microsoft GatherBlockQuantized                           8, 4  Gather (axis 0)
 *
 * Defaults (docs/facts.md, "Quantized graph forms"): wasm → 8-bit DequantizeLinear → MatMul (ORT fuses it into MatMulNBits),
 * 4-bit MatMulNBits / GatherBlockQuantized; node → 8-bit DynamicQuantizeLinear + MatMulInteger for
 * MatMul/Gemm (ORT fuses it into DynamicQuantizeMatMul, the fastest CPU form), Conv as DequantizeLinear;
 * webgpu → never MatMulInteger / DynamicQuantizeLinear / ConvInteger (no WebGPU kernels: they fall back
 * to the CPU and users report garbage), 8-bit as DequantizeLinear, 4-bit MatMulNBits.
 * 4-bit DequantizeLinear is used when asked for (format: qdq) and the opset is or can be made 21, and
 * for Conv; where it cannot be written, MatMul/Gemm fall back to MatMulNBits, Gather to
 * GatherBlockQuantized, Conv/ConvTranspose to 8-bit per-channel (with a warning).
 */
import { attrInt } from '../../onnx/graph.js';
import type { QuantizeStep } from './config.js';
import type { Bits } from './rtn.js';
import type { Target } from './select.js';

export type Form = 'dq' | 'matmulnbits' | 'matmulinteger' | 'convinteger' | 'gatherblock';

export interface Plan {
  form: Form;
  bits: Bits;
  /** Signed storage (int8/int4) or unsigned (uint8/uint4). */
  signed: boolean;
  symmetric: boolean;
  /** 'per-tensor', 'per-channel', or a block size along the reduce axis. */
  granularity: 'per-tensor' | 'per-channel' | number;
  /** Block size written into MatMulNBits / GatherBlockQuantized (scales repeat when coarser). */
  opBlock?: number;
  /** Set when the weight stays float: why. */
  keepFloat?: string;
  /** Why the op form differs from what the recipe asked (same precision), for the report's warnings. */
  note?: string;
  /** Why the precision (bits, granularity, float) differs, for the per-layer table and its summary line. */
  lowered?: string;
}

export interface FormEnv {
  /** The model's default opset (after any upgrade). */
  opset: number;
  /** Why the opset could not be raised further (names the op and node), when it could not. */
  blocker?: string;
}

/** The default-domain opset each form needs: DequantizeLinear 10, per-axis 13, 4-bit/blocked 21; the
 *  dynamic forms DynamicQuantizeLinear 11; com.microsoft ops none. */
export function opsetNeeded(plan: Plan): number {
  if (plan.keepFloat) return 1;
  switch (plan.form) {
    case 'dq':
      return plan.bits === 4 || typeof plan.granularity === 'number' ? 21 : plan.granularity === 'per-channel' ? 13 : 10;
    case 'matmulinteger':
    case 'convinteger':
      return 11;
    default:
      return 1;
  }
}

/** The kinds static quantization fuses (MatMul, Gemm, Conv). */
export const STATIC_KINDS: readonly Target['kind'][] = ['matmul', 'gemm', 'conv'];

const MATMULNBITS_BLOCKS = [256, 128, 64, 32, 16];

/** The MatMulNBits / GatherBlockQuantized block for a granularity: a block size as is; per-channel or
 *  per-tensor: the largest supported block that divides K (scales repeat per block), else 128. */
export function opBlockFor(granularity: Plan['granularity'], K: number): number {
  if (typeof granularity === 'number') return granularity;
  return MATMULNBITS_BLOCKS.find((b) => K % b === 0) ?? 128;
}

function defaultForm(kind: Target['kind'], bits: Bits, target: QuantizeStep['target']): Form {
  if (kind === 'gather') return bits === 4 ? 'gatherblock' : 'dq';
  if (kind === 'matmul' || kind === 'gemm') {
    if (bits === 4) return 'matmulnbits';
    return target === 'node' ? 'matmulinteger' : 'dq';
  }
  return 'dq';
}

function requestedForm(kind: Target['kind'], format: NonNullable<QuantizeStep['format']>): Form {
  switch (format) {
    case 'qdq':
      return 'dq';
    case 'dynamic':
      return kind === 'conv' ? 'convinteger' : kind === 'matmul' || kind === 'gemm' ? 'matmulinteger' : 'dq';
    case 'matmulnbits':
      return kind === 'gather' ? 'gatherblock' : kind === 'matmul' || kind === 'gemm' ? 'matmulnbits' : 'dq';
  }
}

/** The form and granularity for one weight. */
export function planTarget(t: Target, p: QuantizeStep, env: FormEnv): Plan {
  const bits: Bits = p.dtype === 'int4' || p.dtype === 'uint4' ? 4 : 8;
  const plan: Plan = {
    // Static quantization (activations) writes 8-bit MatMul/Gemm/Conv weights as DequantizeLinear: the
    // QDQ groups onnxruntime fuses into QLinearConv / QGemm / QLinearMatMul (static.ts).
    form: p.format ? requestedForm(t.kind, p.format) : p.activations && bits === 8 && STATIC_KINDS.includes(t.kind) ? 'dq' : defaultForm(t.kind, bits, p.target),
    bits,
    signed: p.dtype.startsWith('int'),
    symmetric: p.symmetric,
    granularity: p.granularity,
  };
  const notes: string[] = [];
  const gemmTransA = t.kind === 'gemm' && t.uses.some((u) => attrInt(u.node, 'transA', 0) !== 0);

  if (p.target === 'webgpu' && (plan.form === 'matmulinteger' || plan.form === 'convinteger')) {
    notes.push('webgpu has no MatMulInteger/ConvInteger kernels: written as DequantizeLinear instead');
    plan.form = 'dq';
  }
  if (bits === 4 && (plan.form === 'matmulinteger' || plan.form === 'convinteger')) {
    plan.form = t.kind === 'conv' ? 'dq' : 'matmulnbits';
    notes.push(`4-bit has no dynamic form: written as ${plan.form === 'dq' ? 'DequantizeLinear' : 'MatMulNBits'}`);
  }
  if (plan.form === 'convinteger' && !plan.symmetric) {
    // ORT's ConvInteger takes one weight zero point per tensor, so per-channel asymmetric cannot be run.
    notes.push('ConvInteger needs one weight zero point: asymmetric per-channel Conv written as DequantizeLinear');
    plan.form = 'dq';
  }
  if ((plan.form === 'matmulnbits' || plan.form === 'matmulinteger') && gemmTransA) {
    notes.push('Gemm with transA=1: written as DequantizeLinear → Gemm');
    plan.form = 'dq';
  }
  if (plan.form === 'dq' && typeof plan.granularity === 'number' && bits === 8) plan.granularity = 'per-channel';
  const lowered: string[] = [];
  const why = () => env.blocker ?? `the model imports opset ${env.opset}`;
  const mayNBits = (t.kind === 'matmul' || t.kind === 'gemm') && !gemmTransA;
  if ((plan.form === 'matmulinteger' || plan.form === 'convinteger') && env.opset < 11) {
    // DynamicQuantizeLinear needs opset 11.
    plan.form = mayNBits ? 'matmulnbits' : 'dq';
    notes.push(`the dynamic form needs opset 11 (${why()}): written as ${plan.form === 'dq' ? 'DequantizeLinear' : 'MatMulNBits'}`);
  }
  if (plan.form === 'dq' && env.opset < 10) {
    // No DequantizeLinear before opset 10: only the com.microsoft forms remain.
    if (mayNBits) {
      plan.form = 'matmulnbits';
      notes.push(`DequantizeLinear needs opset 10 (${why()}): written as MatMulNBits`);
    } else if (t.kind === 'gather') {
      plan.form = 'gatherblock';
      notes.push(`DequantizeLinear needs opset 10 (${why()}): written as GatherBlockQuantized`);
    } else {
      plan.keepFloat = `DequantizeLinear needs opset 10 (${why()}) and ${t.op} has no other quantized form`;
      lowered.push(plan.keepFloat);
    }
  }
  if (plan.form === 'dq' && bits === 4 && env.opset < 21 && !plan.keepFloat) {
    const reason = `4-bit DequantizeLinear needs opset 21 (${why()})`;
    if (mayNBits) {
      plan.form = 'matmulnbits';
      notes.push(`${reason}: written as MatMulNBits`);
    } else if (t.kind === 'gather') {
      plan.form = 'gatherblock';
      notes.push(`${reason}: written as GatherBlockQuantized`);
    } else {
      plan.bits = 8;
      plan.granularity = 'per-channel';
      lowered.push(reason);
    }
  }
  if (plan.form === 'dq' && plan.granularity === 'per-channel' && env.opset < 13 && !plan.keepFloat) {
    plan.granularity = 'per-tensor';
    lowered.push(`per-axis DequantizeLinear needs opset 13 (${why()})`);
  }
  if (plan.form === 'matmulnbits' || plan.form === 'gatherblock') {
    const K = t.shape[t.reduceAxis];
    plan.opBlock = opBlockFor(plan.granularity, K);
  }
  if (notes.length) plan.note = notes.join('; ');
  if (lowered.length) plan.lowered = lowered.join('; ');
  return plan;
}
