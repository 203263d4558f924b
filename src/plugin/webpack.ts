/** webpack plugin: `import onnxCompress from 'unplugin-onnx-compress/webpack'`. */
import { unplugin } from './core.js';

export type { Options } from './core.js';
export default unplugin.webpack;
