/**
 * 4-bit Convs in depthwise-separable networks (MobileNet, EfficientNet, PP-LCNet: the backbones of
 * PaddleOCR's detector, recognizer and angle classifier; Silero VAD legacy's encoder) stay 8-bit unless
 * a precision assignment says otherwise.
 *
 * Why: a depthwise Conv has one filter per channel, so its output channels differ widely in scale; the
 * Conv that reads them (the pointwise one, and the squeeze-excitation Convs after it) sums those channels
 * in 4-bit blocks of 32, where the weights of the loud channels set the step and the quiet ones are
 * rounded away; there is no residual path around most blocks, so the errors compound conv after conv.
 * This is the textbook case of quantization trouble (Sheng et al. 2018, "A Quantization-Friendly Separable
 * Convolution for MobileNets"; Nagel et al. 2019, "Data-Free Quantization") and what we measured on
 * PP-OCRv4's recognizer, held-out text lines, cosine of the output against float32:
 *
 *   every layer 4-bit (blocks of 32)                         0.865
 *   the pointwise Convs after a depthwise one at 8-bit       0.954
 *   every Conv 8-bit, the SVTR MatMuls 4-bit                 0.990
 *   (no choice among data-free ones in between reached 0.95: smallest layers, first/last layer, first half)
 *
 * (fake-quantized, as the precision search measures; the zoo's real int4 build with this rule: 0.990).
 * The detector: 0.940 every layer 4-bit, 0.997 with this rule (zoo build). A plain CNN without depthwise Convs
 * (openWakeWord's embedding model) keeps 4-bit Convs at cosine 0.987, so the rule is per model: one
 * depthwise Conv anywhere makes every Conv and ConvTranspose of the model 8-bit under a 4-bit request.
 * MatMul, Gemm, Gather and recurrent weights keep 4-bit (onnxruntime's MatMulNBits quantizer, whose 4-bit
 * forms are what runs fast, leaves Convs float altogether).
 *
 * Scale search did not rescue 4-bit here: MSE-optimal clipping per block lowered the weights' error and
 * dropped the recognizer to 0.766 (its largest weights matter), so scales stay min/max (docs/zoo.md).
 *
 * With data, a budget does better: the precision search measures each layer and may keep many of these
 * Convs 4-bit (PP-OCRv4's detector, minCosine 0.95: 2 Convs at 8-bit, 861 kB against 1,288 kB). An
 * assignment's precision is delivered as assigned; this rule only shapes what a plain `dtype: int4`
 * delivers.
 */
import { attrInt, indexModel } from '../../onnx/graph.js';
import { dimsOf } from '../../onnx/tensor.js';
import type { ModelProto } from '../../onnx/types.js';
import type { Target } from './select.js';

/** Depthwise Convs of a model (group > 1 with one input channel per group), in any graph. */
export function countDepthwise(model: ModelProto): number {
  let n = 0;
  for (const [g, idx] of indexModel(model)) {
    for (const node of g.node) {
      if (node.opType !== 'Conv' || (node.domain ?? '') !== '' || attrInt(node, 'group', 1) <= 1) continue;
      const w = idx.weight(node.input[1] ?? '');
      // A weight computed at run time: group > 1 is taken as depthwise.
      if (!w || dimsOf(w.tensor)[1] === 1) n++;
    }
  }
  return n;
}

/**
 * For a model, the reason each target requested at 4-bit is written 8-bit by this rule (undefined: no
 * reason, 4-bit as asked).
 */
export function separableRule(model: ModelProto): (t: Target) => string | undefined {
  const depthwise = countDepthwise(model);
  if (!depthwise) return () => undefined;
  const why = `a Conv of a depthwise-separable network (${depthwise} depthwise Convs): 4-bit error compounds there; a budget lets the precision search choose per layer`;
  return (t) => (t.kind === 'conv' || t.kind === 'convtranspose' ? why : undefined);
}
