#!/usr/bin/env bash
# Packs what bench/gpu/run.sh needs on a bare device machine (no Node, no npm, no network) into .gpu/
# (git-ignored): the node binary, the runtime packages dist/ imports, and the fixture loaders (test-only
# code, so not in dist/) bundled into bench/out/gpu/. Run `npm run build` first.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .gpu
npx esbuild bench/lib/fixtures.ts --bundle --platform=node --format=esm --external:onnxruntime-node --outfile=bench/out/gpu/fixtures.mjs
xz -T2 -6 -c "$(readlink -f "$(command -v node)")" > .gpu/node.xz
tar -cJf .gpu/modules.tar.xz --exclude='onnxruntime-node/bin/napi-v6/darwin' --exclude='onnxruntime-node/bin/napi-v6/win32' \
  --exclude='onnxruntime-node/bin/napi-v6/linux/arm64' \
  node_modules/onnxruntime-node node_modules/onnxruntime-common node_modules/yaml node_modules/ajv \
  node_modules/fast-deep-equal node_modules/json-schema-traverse node_modules/require-from-string node_modules/fast-uri \
  dist bench/out/gpu/fixtures.mjs
du -sh .gpu/*
