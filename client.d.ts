/**
 * Types for the imports unplugin-onnx-compress answers. Add to tsconfig.json:
 *   "compilerOptions": { "types": ["unplugin-onnx-compress/client"] }
 * or `/// <reference types="unplugin-onnx-compress/client" />` in a .d.ts file.
 *
 *   import url from './m.onnx?compress'            string: URL of the compressed model
 *   import model from './m.onnx?compress&meta'     { url, manifest }
 *   import models from 'virtual:onnx-compress'     { [build id]: { url, manifest } }
 *
 * TypeScript allows one `*` per module pattern, so `*.onnx?compress=*` cannot be declared. The common
 * variant names below are; for another variant name, add two lines to your own .d.ts:
 *   declare module '*.onnx?compress=tiny' { const url: string; export default url; }
 *   declare module '*.onnx?compress=tiny&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
 */

declare module '*.onnx?compress' {
  /** URL of the compressed model in the built app (or on the dev server). */
  const url: string;
  export default url;
}

declare module '*.onnx?compress&meta' {
  const model: {
    /** URL of the compressed model in the built app (or on the dev server). */
    url: string;
    /** What was done to the model and what it cost: sizes before/after, accuracy, steps. */
    manifest: import('unplugin-onnx-compress').Manifest;
  };
  export default model;
}

declare module 'virtual:onnx-compress' {
  /** Every build of every recipe, by build id (`<model>` or `<model>.<variant>`). */
  const models: Record<string, { url: string; manifest: import('unplugin-onnx-compress').Manifest }>;
  export default models;
}

// Common variant names: `?compress=<variant>` and `?compress=<variant>&meta`.
declare module '*.onnx?compress=q4' { const url: string; export default url; }
declare module '*.onnx?compress=q4&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
declare module '*.onnx?compress=q4f16' { const url: string; export default url; }
declare module '*.onnx?compress=q4f16&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
declare module '*.onnx?compress=q8' { const url: string; export default url; }
declare module '*.onnx?compress=q8&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
declare module '*.onnx?compress=int4' { const url: string; export default url; }
declare module '*.onnx?compress=int4&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
declare module '*.onnx?compress=int8' { const url: string; export default url; }
declare module '*.onnx?compress=int8&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
declare module '*.onnx?compress=uint8' { const url: string; export default url; }
declare module '*.onnx?compress=uint8&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
declare module '*.onnx?compress=fp16' { const url: string; export default url; }
declare module '*.onnx?compress=fp16&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
declare module '*.onnx?compress=float16' { const url: string; export default url; }
declare module '*.onnx?compress=float16&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
declare module '*.onnx?compress=pruned' { const url: string; export default url; }
declare module '*.onnx?compress=pruned&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
declare module '*.onnx?compress=small' { const url: string; export default url; }
declare module '*.onnx?compress=small&meta' { const model: { url: string; manifest: import('unplugin-onnx-compress').Manifest }; export default model; }
