/** Vite plugin: `import onnxCompress from 'unplugin-onnx-compress/vite'`. */
import { unplugin } from './core.js';

export type { Options } from './core.js';
export default unplugin.vite;
