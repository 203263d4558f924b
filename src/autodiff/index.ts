/** Reverse-mode autodiff over ONNX graphs, emitting standard ONNX ops (see backward.ts). */
export { buildTrainingGraph, type TrainingGraph, type TrainingGraphOptions } from './backward.js';
export { probeShapes, type ProbeOptions } from './shapes.js';
export { GradBuilder, type Dim, type ShapeInfo, type ValueShape } from './builder.js';
export { gradRule, NON_DIFFERENTIABLE, supportedOps } from './registry.js';
export type { GradRule, GradRules } from './types.js';
