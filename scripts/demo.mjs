#!/usr/bin/env node
// `npm run demo`: builds examples/vite-app with Vite's JS API (the plugin from dist/, so run
// `npm run build` first — the npm script does) and prints what the compression did to each model,
// from the build's aggregate onnx-compress.json.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const root = fileURLToPath(new URL('../examples/vite-app/', import.meta.url));
const outDir = path.join(root, 'dist');

const t0 = performance.now();
await build({
  root,
  configFile: path.join(root, 'vite.config.ts'),
  logLevel: 'warn',
  // A cold build spends its time compressing in the plugin: expected, so no "slow plugin" notice.
  build: { outDir, emptyOutDir: true, rolldownOptions: { checks: { pluginTimings: false } } },
});
const seconds = ((performance.now() - t0) / 1000).toFixed(1);

const { models } = JSON.parse(await readFile(path.join(outDir, 'onnx-compress.json'), 'utf8'));
const kB = (n) => `${(n / 1000).toFixed(1)} kB`;
const pct = (n) => (typeof n === 'number' ? `${(n * 100).toFixed(2)} %` : '–');

console.log(`\nBuilt examples/vite-app in ${seconds} s → ${path.relative(process.cwd(), outDir)}/\n`);
for (const [id, { file, cached, manifest: m }] of Object.entries(models)) {
  const a = m.accuracy;
  const rows = [
    ['model', `${id}  (${m.steps.map((s) => `${s.step} ${s.params?.dtype ?? ''}`.trim()).join(', ')})`],
    ['file', file],
    ['bytes', `${kB(m.sizes.before.bytes)} → ${kB(m.sizes.after.bytes)}  (${(m.sizes.after.bytes / m.sizes.before.bytes).toFixed(2)}×)`],
    ['brotli', `${kB(m.sizes.before.brotli)} → ${kB(m.sizes.after.brotli)}`],
    ['accuracy', a ? `${pct(a.original.accuracy)} → ${pct(a.compressed.accuracy)}  (${a.samples} labelled e-mails)` : 'not evaluated'],
    ['agreement', a ? pct(a.metrics.agreement) : '–'],
    ['cached', cached ? 'yes' : 'no'],
  ];
  for (const [k, v] of rows) console.log(`  ${k.padEnd(9)} ${v}`);
  console.log();
}
console.log(`Report: ${path.relative(process.cwd(), path.join(outDir, 'onnx-compress-report.html'))}`);
console.log(`Try it: npx vite preview ${path.relative(process.cwd(), root) || '.'}`);
