/** The `distill` recipe block: parameters, defaults and the checks that point at the recipe. */
import type { StepConfig } from '../step-config.js';

export interface DistillStep {
  /** Absolute path of the teacher model, or 'original' (the uncompressed source). */
  teacher: string;
  /** Absolute path or 'random'; defaults to calibration.data. */
  data: string;
  /** Sizes of symbolic input dims for random data (calibration.shapes when data is calibration's). */
  shapes?: Record<string, number>;
  temperature: number;
  /** Exactly one of steps / epochs is set (epochs: 1 when the recipe sets neither). */
  steps?: number;
  epochs?: number;
  learningRate: number;
  batchSize: number;
  method: 'layerwise' | 'logits' | 'both';
  labels: boolean;
  seed: number;
}

export const distillConfig: StepConfig<DistillStep> = {
  name: 'distill',
  keys: {
    teacher: 'original',
    data: undefined, // calibration.data
    shapes: undefined, // calibration.shapes when data is calibration's
    temperature: 2,
    steps: undefined,
    epochs: undefined, // 1 when steps is not set
    learningRate: 0.001,
    batchSize: 32,
    method: 'logits',
    labels: false,
    seed: 0,
  },
  required: [],
  files: { teacher: 'model', data: 'data' },
  normalize(d, { problem, calibration, calibrationShapes, modelPath, dataPath }) {
    if (d.steps !== undefined && d.epochs !== undefined) problem(['distill', 'epochs'], 'set steps or epochs, not both', 'key');
    const data = d.data !== undefined ? dataPath(String(d.data)) : calibration;
    if (data === undefined) {
      problem(['distill'], 'no training data: set distill.data or calibration.data', 'key');
      return undefined;
    }
    const shapes = d.shapes !== undefined ? (d.shapes as Record<string, number>) : d.data === undefined ? calibrationShapes : undefined;
    return {
      teacher: modelPath((d.teacher as string | undefined) ?? 'original'),
      data,
      ...(shapes && { shapes: { ...shapes } }),
      temperature: (d.temperature as number) ?? 2,
      ...(d.steps !== undefined ? { steps: d.steps as number } : { epochs: (d.epochs as number) ?? 1 }),
      learningRate: (d.learningRate as number) ?? 1e-3,
      batchSize: (d.batchSize as number) ?? 32,
      method: (d.method as DistillStep['method']) ?? 'logits',
      labels: (d.labels as boolean) ?? false,
      seed: (d.seed as number) ?? 0,
    };
  },
};
