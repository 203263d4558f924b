/**
 * A child process for peak-RSS measurements (run under `/usr/bin/time -v` by bench/codec.ts):
 *
 *   node --import tsx bench/lib/repack-child.ts <mode> [in] [out]   (or a bundled .mjs of this file)
 *
 * modes:
 *   noop    load the codec modules and exit (the process's own baseline)
 *   copy    fs.readFileSync(in) → fs.writeFileSync(out)
 *   repack  readModel(in) → writeModel(model, out)   (decode, encode, streamed write)
 *
 * Prints one JSON line: {mode, ms, maxRss, rssAfter, heapUsed, external, arrayBuffers} (bytes); maxRss is
 * getrusage's ru_maxrss, the same figure `/usr/bin/time -v` reports (used when GNU time is missing).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readModel, writeModel } from '../../src/onnx/io.js';

const [mode, input, output] = process.argv.slice(2);
const t0 = performance.now();
switch (mode) {
  case 'noop':
    break;
  case 'copy':
    writeFileSync(output, readFileSync(input));
    break;
  case 'repack': {
    const model = readModel(input);
    writeModel(model, output);
    break;
  }
  default:
    console.error('usage: repack-child <noop|copy|repack> [in] [out]');
    process.exit(2);
}
const ms = performance.now() - t0;
const mem = process.memoryUsage();
console.log(JSON.stringify({ mode, ms, maxRss: process.resourceUsage().maxRSS * 1024, rssAfter: mem.rss, heapUsed: mem.heapUsed, external: mem.external, arrayBuffers: mem.arrayBuffers }));
