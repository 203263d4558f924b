/** The `quantize` recipe block: parameters, defaults and the checks that point at the recipe. */
import { stringList, type NormalizeContext, type StepConfig } from '../step-config.js';

export type QuantizeDtype = 'int8' | 'uint8' | 'int4' | 'uint4' | 'float16' | 'auto';

/**
 * One layer's precision in a mixed-precision assignment: 4-bit with a block size, 8-bit per channel,
 * float16 storage, or left float32. `auto` and a budget's search produce these; see QuantizeStep.layers.
 */
export type LayerPrecision = 'int4:16' | 'int4:32' | 'int4:64' | 'int4:128' | 'int8' | 'float16' | 'float32';

/**
 * transformers.js's names for model precisions, accepted as `dtype` aliases. `bnb4` (bitsandbytes NF4,
 * MatMulBnb4) is a different format that this tool does not write: the schema refuses it, pointing at q4.
 */
export const DTYPE_ALIASES = {
  q8: { dtype: 'int8' },
  q4: { dtype: 'int4' },
  q4f16: { dtype: 'int4', float16: true },
  fp16: { dtype: 'float16' },
} as const satisfies Record<string, { dtype: QuantizeDtype; float16?: boolean }>;
export type DtypeAlias = keyof typeof DTYPE_ALIASES;

export interface QuantizeStep {
  dtype: QuantizeDtype;
  /** A number is a block size (16 | 32 | 64 | 128), only for int4/uint4. */
  granularity: 'per-tensor' | 'per-channel' | number;
  symmetric: boolean;
  method: 'rtn' | 'gptq';
  /** GPTQ only. */
  actOrder: boolean;
  target: 'wasm' | 'webgpu' | 'node';
  /** Op form forced by the recipe; absent = chosen from target. */
  format?: 'qdq' | 'dynamic' | 'matmulnbits';
  /** Convert the remaining float weights to fp16 ("q4f16"); always true for dtype float16. */
  float16: boolean;
  keepIoTypes: boolean;
  keepFloat32Ops: string[];
  include: string[];
  exclude: string[];
  /** The transformers.js name the recipe wrote as `dtype`, when it wrote one (names the output in that layout). */
  alias?: DtypeAlias;
  /**
   * Per-layer precision (layer name → precision), set by the budget search (never written in a recipe):
   * a listed layer takes this precision instead of dtype/granularity; unlisted layers follow dtype.
   */
  layers?: Record<string, LayerPrecision>;
  /** Any layer delivered at another precision than asked (or left float) fails the build. Only set when true,
   *  so other builds' cache keys stay what they were. */
  strict?: boolean;
  /**
   * Static quantization: activations stored per tensor in this type (uint8 asymmetric, int8 symmetric),
   * ranges calibrated on the calibration data, so onnxruntime runs QLinearConv / QGemm / QLinearMatMul.
   * Absent: weight-only. Only set when the recipe sets it (other builds' cache keys stay what they were).
   */
  activations?: 'uint8' | 'int8';
  /** How activation ranges are calibrated (with activations; default minmax). */
  calibrate?: 'minmax' | 'percentile' | 'entropy';
  /** calibrate: percentile — the percentile of |x| the range keeps (default 99.99). */
  percentile?: number;
  /**
   * With activations: the smallest cosine with float32, on the calibration samples, that the 8-bit
   * activations alone may leave the output; those that cost most are kept float until it holds
   * (static-guard.ts). 0 turns the guard off. Default STATIC_GUARD_COSINE.
   */
  activationCosine?: number;
  /**
   * Static quantization under a budget: layer name → why its activations stay float, set by the budget
   * search (src/pipeline/search/, never written in a recipe). When present, the search has decided every
   * layer's activations and the activation guard does not run; unlisted layers keep 8-bit activations.
   */
  floatActivations?: Record<string, string>;
}

/** The activation guard's default floor (quantize.activationCosine). */
export const STATIC_GUARD_COSINE = 0.995;

/** How the budget search's reasons for float activations begin (QuantizeStep.floatActivations). */
export const SEARCH_REASON = 'kept float by the budget search';

/** Why onnxruntime-web's WebGPU EP cannot run static int8 (shown in the recipe error). */
export const WEBGPU_STATIC_REASON =
  "onnxruntime-web's WebGPU EP has DequantizeLinear but no QuantizeLinear, QLinearConv, QLinearMatMul or QGemm kernels, " +
  'so every quantized activation would go back to the CPU and run there: drop activations (weight-only int8 runs on WebGPU) or use target: wasm';

export const quantizeConfig: StepConfig<QuantizeStep> = {
  name: 'quantize',
  keys: {
    dtype: undefined,
    granularity: undefined, // per-channel for 8-bit, 32 for 4-bit
    symmetric: undefined, // true for int8/int4, false for uint8/uint4
    method: 'rtn',
    actOrder: false,
    target: 'wasm',
    format: undefined,
    float16: undefined, // true for dtype float16
    keepIoTypes: true,
    keepFloat32Ops: [],
    include: [],
    exclude: [],
    strict: undefined, // absent unless true
    activations: undefined, // absent: weight-only
    calibrate: undefined, // minmax when activations is set
    percentile: undefined, // 99.99 when calibrate is percentile
    activationCosine: undefined, // STATIC_GUARD_COSINE when activations is set
  },
  required: ['dtype'],
  files: {},
  normalize(q, { problem, calibration }) {
    const alias = (q.dtype as string) in DTYPE_ALIASES ? (q.dtype as DtypeAlias) : undefined;
    const aliased: { dtype: QuantizeDtype; float16?: boolean } | undefined = alias && DTYPE_ALIASES[alias];
    if (aliased?.float16 && q.float16 === false) problem(['quantize', 'float16'], `float16: false contradicts dtype: ${alias}`);
    const dtype = aliased?.dtype ?? (q.dtype as QuantizeDtype);
    // auto may pick 4-bit blocks: its granularity is the 4-bit block size.
    const fourBit = dtype === 'int4' || dtype === 'uint4' || dtype === 'auto';
    const method = (q.method as QuantizeStep['method']) ?? 'rtn';
    if (typeof q.granularity === 'number' && !fourBit) {
      problem(['quantize', 'granularity'], `block-wise granularity is for int4/uint4, not ${dtype}`);
    }
    if (q.actOrder === true && method !== 'gptq') problem(['quantize', 'actOrder'], 'actOrder only applies to method: gptq');
    if (q.float16 === false && dtype === 'float16') problem(['quantize', 'float16'], 'float16: false contradicts dtype: float16');
    if (method === 'gptq' && calibration === undefined) {
      problem(['quantize', 'method'], 'method gptq needs calibration data: set calibration.data');
    }
    const statik = staticParams(q, { dtype, method, alias, problem, calibration });
    return {
      dtype,
      granularity: (q.granularity as QuantizeStep['granularity']) ?? (fourBit ? 32 : 'per-channel'),
      symmetric: (q.symmetric as boolean) ?? !dtype.startsWith('u'),
      method,
      actOrder: (q.actOrder as boolean) ?? false,
      target: (q.target as QuantizeStep['target']) ?? 'wasm',
      ...(q.format !== undefined && { format: q.format as QuantizeStep['format'] }),
      float16: dtype === 'float16' || q.float16 === true || aliased?.float16 === true,
      keepIoTypes: (q.keepIoTypes as boolean) ?? true,
      keepFloat32Ops: stringList(q.keepFloat32Ops),
      include: stringList(q.include),
      exclude: stringList(q.exclude),
      ...(alias && { alias }),
      ...(q.strict === true && { strict: true }),
      ...statik,
    };
  },
};

/** The static-quantization keys, checked against the rest of the block and the build's data. */
function staticParams(
  q: Record<string, unknown>,
  { dtype, method, alias, problem, calibration }: { dtype: QuantizeDtype; method: string; alias?: string; problem: NormalizeContext['problem']; calibration?: string },
): Pick<QuantizeStep, 'activations' | 'calibrate' | 'percentile' | 'activationCosine'> {
  const activations = q.activations as QuantizeStep['activations'];
  const calibrate = q.calibrate as QuantizeStep['calibrate'];
  if (activations === undefined) {
    if (calibrate !== undefined) problem(['quantize', 'calibrate'], 'calibrate applies to static quantization: set activations: uint8 or int8');
    else if (q.percentile !== undefined) problem(['quantize', 'percentile'], 'percentile applies to static quantization with calibrate: percentile');
    else if (q.activationCosine !== undefined) problem(['quantize', 'activationCosine'], 'activationCosine applies to static quantization: set activations: uint8 or int8');
    return {};
  }
  const at = ['quantize', 'activations'];
  if (calibration === undefined) problem(at, `activations: ${activations} needs calibration data to measure activation ranges: set calibration.data`);
  else if (calibration === 'random') problem(at, 'activation ranges measured on random inputs are not the ranges of your data: set calibration.data to real samples');
  if (dtype !== 'int8') problem(['quantize', 'dtype'], `static quantization stores weights as int8 (symmetric, per channel), not ${alias ?? dtype}`);
  if (q.symmetric === false) problem(['quantize', 'symmetric'], "static quantization needs symmetric weights: onnxruntime's QLinearConv and QGemm take int8 weights with zero point 0");
  if (method === 'gptq') problem(['quantize', 'method'], 'method gptq is not combined with static activations: use method: rtn');
  if (q.target === 'webgpu') problem(at, `static quantization cannot run on target webgpu: ${WEBGPU_STATIC_REASON}`);
  if (q.format === 'dynamic' || q.format === 'matmulnbits') problem(['quantize', 'format'], `format ${String(q.format)} contradicts static activations, which are written as QuantizeLinear/DequantizeLinear pairs (format: qdq)`);
  if (q.float16 === true) problem(['quantize', 'float16'], 'float16 is not combined with static activations');
  if (q.percentile !== undefined && calibrate !== 'percentile') problem(['quantize', 'percentile'], 'percentile applies to calibrate: percentile');
  return {
    activations,
    calibrate: calibrate ?? 'minmax',
    ...(calibrate === 'percentile' && { percentile: (q.percentile as number | undefined) ?? 99.99 }),
    activationCosine: (q.activationCosine as number | undefined) ?? STATIC_GUARD_COSINE,
  };
}

/** The normalized quantize block a recipe with only `dtype` gets (every default filled in). */
export function quantizeDefaults(dtype: QuantizeDtype): QuantizeStep {
  return quantizeConfig.normalize({ dtype }, { problem: () => {}, calibration: 'random', modelPath: (p) => p, dataPath: (p) => p })!;
}
