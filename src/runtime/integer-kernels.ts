/**
 * Whether onnxruntime-node's 8-bit kernels compute exactly on this CPU, and what sessions do where not.
 *
 * MLAS (onnxruntime's CPU math) multiplies 8-bit activations by 8-bit weights with VNNI's vpdpbusd on
 * x86 CPUs that have it (AVX-512 VNNI, AVX-VNNI, AMX), which accumulates in 32 bits. Without VNNI (AVX2,
 * AVX-512 without VNNI) its uint8 × int8 and int8 × int8 kernels use vpmaddubsw, whose 16-bit sums of
 * pairs saturate (255 · 127 · 2 > 32767). Measured with onnxruntime-node 1.30 on an AMD EPYC with AVX2
 * only: the static int8 Fashion-MNIST CNN's logits were off by up to 2.9 (uint8 activations) and 9.3
 * (int8) against onnxruntime-web's wasm kernels, which are exact, and its accuracy fell with them; the
 * same session with onnxruntime's QDQ fusions off (`session.disable_quant_qdq`: DequantizeLinear →
 * float op → QuantizeLinear, which is what exact integer kernels compute) agreed with wasm to 4e-6.
 *
 * So where the kernels saturate, sessions that measure a model with quantized activations (a
 * QuantizeLinear node: static int8) run it with the fusions off: verification, evaluation, the web
 * check's reference, the static step's guard and the precision search then see the model a browser
 * runs, not this CPU's rounding. The build says so in a warning. Dynamic forms (MatMulInteger,
 * ConvInteger) store uint8 weights instead, which every CPU multiplies exactly (dynamic.ts).
 *
 * ONNX_COMPRESS_EMULATE_INTEGERS=1 forces the fused-off sessions, =0 onnxruntime's kernels as they are.
 * Where the CPU's flags cannot be read (an x86-64 machine other than Linux), the kernels are assumed to
 * saturate: the fused-off session is exact, only slower.
 */
import { readFileSync } from 'node:fs';
import type { ModelProto } from '../onnx/types.js';
import { allGraphs } from '../onnx/walk.js';

let saturating: boolean | undefined;

/** Whether onnxruntime's 8-bit matrix kernels can saturate on this CPU (see the file comment). */
export function integerKernelsSaturate(): boolean {
  const forced = process.env.ONNX_COMPRESS_EMULATE_INTEGERS;
  if (forced === '1' || forced === '0') return forced === '1';
  if (saturating !== undefined) return saturating;
  if (process.arch !== 'x64') return (saturating = false);
  let flags: string | undefined;
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
  } catch {
    // not Linux
  }
  return (saturating = flags === undefined || !/\b(avx512_vnni|avx_vnni|amx_int8)\b/.test(flags));
}

/** Whether `model` quantizes activations (a QuantizeLinear node in any graph). */
export function quantizesActivations(model: ModelProto): boolean {
  return allGraphs(model).some((g) => g.node.some((n) => n.opType === 'QuantizeLinear' && (!n.domain || n.domain === 'ai.onnx')));
}

/** The build's warning where its output's integer layers were measured with the fusions off. */
export const EMULATED_NOTICE =
  "onnxruntime-node's 8-bit kernels saturate on this CPU (x86 without VNNI): the quantized layers were verified and measured as DequantizeLinear → float → QuantizeLinear, which is what exact integer kernels (onnxruntime-web's, a VNNI CPU's) compute";
