import { defineConfig } from 'vite';
import onnxCompress from 'unplugin-onnx-compress/vite';

export default defineConfig({
  // Relative base: the built app works from any folder (file server, sub-path, `vite preview`).
  base: './',
  plugins: [onnxCompress()],
  build: { target: 'es2022' },
  // The model runs in a module worker (src/worker.ts); onnxruntime-web loads code on demand, which needs ES output.
  worker: { format: 'es' },
  // onnxruntime-web loads its .wasm itself; pre-bundling would break the relative URL it computes.
  optimizeDeps: { exclude: ['onnxruntime-web'] },
});
