/** Rollup plugin: `import onnxCompress from 'unplugin-onnx-compress/rollup'`. */
import { unplugin } from './core.js';

export type { Options } from './core.js';
export default unplugin.rollup;
