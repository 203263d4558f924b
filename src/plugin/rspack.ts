/** Rspack plugin: `import onnxCompress from 'unplugin-onnx-compress/rspack'`. */
import { unplugin } from './core.js';

export type { Options } from './core.js';
export default unplugin.rspack;
