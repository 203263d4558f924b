import { defineConfig } from 'vite';
import onnxCompress from 'unplugin-onnx-compress/vite';

export default defineConfig({
  // Relative base: the built app works from any folder (file server, sub-path, `vite preview`).
  base: './',
  plugins: [onnxCompress()],
  build: { target: 'es2022' },
  // onnxruntime-web loads its .wasm itself; pre-bundling would break the relative URL it computes.
  optimizeDeps: { exclude: ['onnxruntime-web'] },
});
