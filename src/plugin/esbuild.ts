/** esbuild plugin: `import onnxCompress from 'unplugin-onnx-compress/esbuild'`. */
import { unplugin } from './core.js';

export type { Options } from './core.js';
export default unplugin.esbuild;
