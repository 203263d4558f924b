#!/usr/bin/env node
/**
 * onnx-compress's entry (the package's `bin`). The command line itself is src/cli/main.ts; this file
 * only decides whether to run it here or in a process relaunched with huge pages (src/cli/relaunch.ts),
 * before loading anything else, and here starts hashing a build's large sources (src/cli/early-hash.ts).
 * The command runs from dist/cli-bundle/ (scripts/bundle-cli.mjs) where `npm run build` made it.
 */
import { existsSync } from 'node:fs';
import { relaunched } from './cli/relaunch.js';
import { quietOnnxruntime } from './runtime/child.js';

/** Runs the command line in this process (tests and programs call it), answering the exit code. */
export async function main(argv: string[]): Promise<number> {
  return (await import('./cli/main.js')).main(argv);
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/onnx-compress')) {
  const argv = process.argv.slice(2);
  quietOnnxruntime(); // no usage telemetry from a build tool's onnxruntime (src/runtime/child.ts)
  // The bundled command line (scripts/bundle-cli.mjs: fewer files to load), else the modules as built.
  const dir = existsSync(new URL('./cli-bundle/main.js', import.meta.url)) ? './cli-bundle' : './cli';
  // Relaunched, this process hashes the build's sources for the new one while that starts.
  const code = await relaunched(argv, {
    // Only a help: whatever fails here, the relaunched process hashes for itself.
    handOver: (pipe) =>
      void import(`${dir}/early-hash.js`)
        .then((m) => m.handOverHashes(argv, pipe))
        .catch(() => pipe.end()),
  });
  if (code === undefined) {
    (await import(`${dir}/early-hash.js`)).hashSourcesEarly(argv);
    (await import(`${dir}/main.js`)).runCli(argv);
  }
  else process.exit(code);
}
