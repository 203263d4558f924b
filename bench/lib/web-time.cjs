/**
 * Child of bench/web-forms.ts: times models in onnxruntime-web's wasm backend (1 thread, V8's default
 * tiering, as a page without cross-origin isolation runs it). Reads a JSON job from argv[2]:
 *
 *   { ort, models: [{ name, file }], inputs: [{ label, feeds: { name: { type, dims, fill } } }], runs, warm }
 *
 * `fill`: 'sin' (float sin(i)), or a number (every element). Loads every model once (the first session of
 * the process is a separate warm-up of the runtime, not timed), then per input: `warm` calls of each
 * model, then `runs` rounds in which every model runs once, in turn, so machine noise hits all alike.
 * Prints one JSON line: { create: { name: ms }, runs: { label: { name: [ms…] } } } (a model that fails to
 * load or run: { error: { name: message } }).
 */
'use strict';
const { readFileSync } = require('node:fs');

const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const ort = require(job.ort);
ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';

function tensor(spec) {
  const n = spec.dims.reduce((a, b) => a * b, 1);
  if (spec.type === 'int64') return new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(spec.fill)), spec.dims);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = spec.fill === 'sin' ? Math.sin(i) : spec.fill;
  return new ort.Tensor('float32', data, spec.dims);
}

(async () => {
  const out = { create: {}, runs: {}, error: {} };
  // The runtime's own start (wasm compile, first session) is paid once per page: not any model's.
  await ort.InferenceSession.create(readFileSync(job.models[0].file), { executionProviders: ['wasm'] }).then((s) => s.release());
  const sessions = [];
  for (const m of job.models) {
    const bytes = readFileSync(m.file);
    const t = performance.now();
    try {
      sessions.push({ name: m.name, s: await ort.InferenceSession.create(bytes, { executionProviders: ['wasm'] }) });
      out.create[m.name] = performance.now() - t;
    } catch (e) {
      out.error[m.name] = String(e.message ?? e).slice(0, 300);
    }
  }
  for (const input of job.inputs) {
    const feeds = Object.fromEntries(Object.entries(input.feeds).map(([k, v]) => [k, tensor(v)]));
    const live = [];
    for (const x of sessions) {
      try {
        for (let i = 0; i < job.warm; i++) await x.s.run(feeds);
        live.push(x);
      } catch (e) {
        out.error[x.name] = String(e.message ?? e).slice(0, 300);
      }
    }
    const times = Object.fromEntries(live.map((x) => [x.name, []]));
    for (let r = 0; r < job.runs; r++) {
      for (const x of live) {
        const t = performance.now();
        await x.s.run(feeds);
        times[x.name].push(performance.now() - t);
      }
    }
    out.runs[input.label] = times;
  }
  process.stdout.write(JSON.stringify(out) + '\n');
})().catch((e) => {
  process.stderr.write(String(e?.stack ?? e) + '\n');
  process.exit(1);
});
