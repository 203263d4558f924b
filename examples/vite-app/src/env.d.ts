/// <reference types="vite/client" />
// An app that installs the plugin writes `/// <reference types="unplugin-onnx-compress/client" />`
// (or lists it in tsconfig "types"); inside the plugin's own repository the file is referenced by path.
/// <reference path="../../../client.d.ts" />
