/**
 * How many threads the steps that split their weights over worker threads use (quantize's RTN, magnitude
 * pruning in place): all cores from 4 on, else one. On this project's 2-core machine a worker was no
 * faster for quantizing the 113 MB model (the second core was rarely free: onnxruntime's and
 * onnxruntime-web's child processes start while the steps run) and cost ~85 MB of memory (its own V8
 * heap and modules). ONNX_COMPRESS_THREADS=n sets the count (1: no workers; at most the cores).
 */
import os from 'node:os';

/** The cores this process may use. */
export function coreCount(): number {
  return os.availableParallelism();
}

export function threadCount(): number {
  const cores = coreCount();
  const set = Number(process.env.ONNX_COMPRESS_THREADS);
  if (Number.isInteger(set) && set > 0) return Math.min(set, cores);
  return cores >= 4 ? cores : 1;
}
