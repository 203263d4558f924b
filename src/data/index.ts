/** The sample layer: the contract (types.ts), the formats that adapt to it, and batching. */
export type { DataSpec, FormatReader, InputSpec, ReadOptions, Sample } from './types.js';
export { DATA_FORMATS, dataExtensions, dataFormatOf, type DataFormat } from './formats.js';
export { loadSamples, type LoadOptions } from './load.js';
export { readJsonl, locateJsonError } from './jsonl.js';
export { readNpy, readNpz, readNpyFolder, parseNpy, type NpyArray } from './npy.js';
export { readZip } from './zip.js';
export { readModule } from './module.js';
export { randomSamples, DEFAULT_RANDOM_SAMPLES } from './random.js';
export { stackSamples } from './batch.js';
