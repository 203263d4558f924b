/**
 * STEP ONLY — not the user's path: this times read → quantize → write without hashing, verification,
 * size figures or a manifest. What `onnx-compress build` costs is measured by bench/build.ts.
 *
 * Quantize-step benchmark on the 113 MB reference model of docs/facts.md (6 × [LayerNorm → MatMul 768×3072 + Add
 * → Gelu → MatMul 3072×768 + Add], bench/lib/synthetic.ts mlpStack), against the figures of ONNX
 * Runtime's Python quantizer in docs/facts.md.
 *
 *   npx tsx bench/quantize.ts [--runs 5] [--no-gptq] [--only TEXT] [--python /path/to/python]
 *
 * - Whole-process wall time and peak RSS: a tiny runner (readModelLazy → quantize → write) bundled with esbuild
 *   into a temp .mjs and run as `/usr/bin/time -v node runner.mjs …`, median of --runs; node's bare
 *   start-up (`node -e 0`) is measured the same way.
 * - Accuracy: onnxruntime-node (2 threads) on one seeded N(0, 1) input [2, 128, 768]: cosine and max
 *   |Δ| of the output vs float32. Default session options, so ORT's own fusions apply (DequantizeLinear
 *   → MatMul becomes MatMulNBits with int8 activations at accuracy level 4).
 * - GPTQ int4 (in this process, not timed against the budget): calibrated on 32 other seeded inputs
 *   [1, 128, 768].
 * - --python PY: also runs ONNX Runtime's own Python quantizer (onnxruntime.quantization, same modes) on
 *   this same model in this same run, for wall/RSS/bytes/cosine side by side (needs onnxruntime + onnx
 *   installed for that interpreter). docs/facts.md's figures are for another model/input of that shape:
 *   on this one, ORT's quantizer gives other cosines (see the table).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { readModel } from '../src/onnx/io.js';
import type { QuantizeStep } from '../src/recipe/types.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import { quantizeStep } from '../src/transforms/quantize/index.js';
import { fillNormal, mlpStack, prng, writeSynthetic } from './lib/synthetic.js';
import { writeModel } from '../src/onnx/io.js';
import type { Sample } from '../src/data/types.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf('--runs') + 1] ?? 5) || 5;
const GPTQ = !args.includes('--no-gptq');
const PYTHON = args.includes('--python') ? args[args.indexOf('--python') + 1] : undefined;
/** --only TEXT: just the modes whose label contains TEXT. */
const ONLY = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;

/** ORT's Python quantizer for a mode (same formats as ours), or undefined when it has no equivalent. */
function pythonScript(mode: Mode, input: string, output: string): string | undefined {
  const p = mode.params;
  const head = `import logging; logging.disable(logging.INFO)\nimport onnx\n`;
  if (p.dtype === 'int8' && p.target === 'node') {
    return head + `from onnxruntime.quantization import quantize_dynamic, QuantType\nquantize_dynamic(${JSON.stringify(input)}, ${JSON.stringify(output)}, per_channel=True, weight_type=QuantType.QInt8)\n`;
  }
  if (p.dtype === 'int4' || p.dtype === 'uint4') {
    return head + `from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer\nq = MatMulNBitsQuantizer(onnx.load(${JSON.stringify(input)}), block_size=${p.granularity}, is_symmetric=${p.symmetric ? 'True' : 'False'})\nq.process()\nq.model.save_model_to_file(${JSON.stringify(output)})\n`;
  }
  if (p.dtype === 'float16') {
    return head + `from onnxruntime.transformers.float16 import convert_float_to_float16\nonnx.save(convert_float_to_float16(onnx.load(${JSON.stringify(input)}), keep_io_types=True), ${JSON.stringify(output)})\n`;
  }
  return undefined;
}

/** Runs a program under /usr/bin/time -v. */
function timedExec(argv: string[]): Timing {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-v', ...argv], { encoding: 'utf8' });
  const wall = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed:\n${r.stderr}`);
  const num = (re: RegExp) => Number(re.exec(r.stderr)?.[1] ?? NaN);
  return {
    wall,
    cpu: num(/User time \(seconds\): ([\d.]+)/) + num(/System time \(seconds\): ([\d.]+)/),
    rssMb: num(/Maximum resident set size \(kbytes\): (\d+)/) / 1024,
  };
}

const base: QuantizeStep = quantizeDefaults('int8');

interface Mode {
  label: string;
  params: QuantizeStep;
  /** docs/facts.md reference row: wall s, RSS MB, output MB, cosine, max abs. */
  ref?: { wall: number; rss: number; bytes: number; cosine: number; maxAbs: number; label: string };
  budget: { wall?: number; rssRatio?: number; bytesRatio?: number; cosine?: number };
}

const modes: Mode[] = [
  {
    label: 'int8 per-channel (node: dynamic)',
    params: { ...base, target: 'node' },
    ref: { label: 'int8 dynamic, per-channel', wall: 2.53, rss: 354, bytes: 28.58, cosine: 0.999578, maxAbs: 0.196 },
    budget: { wall: 0.8, rssRatio: 1.5, bytesRatio: 0.26, cosine: 0.99958 },
  },
  {
    label: 'int8 per-channel (wasm: DQ→MatMul)',
    params: { ...base },
    budget: { wall: 0.8, rssRatio: 1.5, bytesRatio: 0.26, cosine: 0.99958 },
  },
  {
    label: 'int4 block 32 sym (MatMulNBits)',
    params: { ...base, dtype: 'int4', granularity: 32 },
    ref: { label: '4-bit MatMulNBits, block 32, symmetric', wall: 1.12, rss: 314, bytes: 17.84, cosine: 0.991593, maxAbs: 0.897 },
    budget: { wall: 0.8, rssRatio: 1.5, bytesRatio: 0.16, cosine: 0.9916 },
  },
  {
    label: 'uint4 block 128 asym (MatMulNBits)',
    params: { ...base, dtype: 'uint4', granularity: 128, symmetric: false },
    ref: { label: '4-bit MatMulNBits, block 128, asymmetric', wall: 1.07, rss: 314, bytes: 15.29, cosine: 0.988222, maxAbs: 1.131 },
    budget: {},
  },
  {
    label: 'float16 (keep io types)',
    params: { ...base, dtype: 'float16', float16: true },
    ref: { label: 'fp16, keep io types', wall: 1.21, rss: 592, bytes: 56.7, cosine: 1, maxAbs: 0.0045 },
    budget: { wall: 0.8, rssRatio: 1.5 },
  },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

interface Timing {
  wall: number;
  /** User + system CPU seconds: less sensitive than wall time to other processes on a busy machine. */
  cpu: number;
  rssMb: number;
}

/** Runs `node …` under /usr/bin/time -v: wall seconds (measured here), CPU seconds and peak RSS in MB. */
function timed(argv: string[]): Timing {
  return timedExec([process.execPath, ...argv]);
}

async function bundleRunner(dir: string): Promise<string> {
  const src = join(dir, 'runner.ts');
  writeFileSync(
    src,
    `import { writeModel } from ${JSON.stringify(join(root, 'src/onnx/io.ts'))};
import { quantizeStep, readModelLazy } from ${JSON.stringify(join(root, 'src/transforms/quantize/index.ts'))};
const [input, output, params] = process.argv.slice(2);
// Tensor payloads stay on disk until quantized (lazy.ts): RSS holds the output, not the input too.
const model = readModelLazy(input);
const { model: out } = await quantizeStep(JSON.parse(params))(model, { file: input, original: model, device: 'cpu', seed: 0, log: () => {} });
writeModel(out, output);
`,
  );
  const esbuild = await import(join(root, 'node_modules/esbuild/lib/main.js'));
  // Code splitting keeps dynamically imported modules (GPTQ, the web check: onnxruntime) out of the
  // entry chunk, so RTN and float16 runs never load the native runtime.
  await (esbuild.default ?? esbuild).build({
    entryPoints: [src],
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outdir: join(dir, 'runner'),
    outExtension: { '.js': '.mjs' },
    external: ['onnxruntime-node', 'onnxruntime-web'],
    logLevel: 'error',
  });
  return join(dir, 'runner', 'runner.mjs');
}

function input(seed: number, dims: number[]): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  return new ort.Tensor('float32', fillNormal(new Float32Array(n), prng(seed), 1), dims);
}

async function outputOf(file: string, x: ort.Tensor): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, interOpNumThreads: 1 });
  try {
    const r = await s.run({ input: x });
    return r.output.data as Float32Array;
  } finally {
    await s.release();
  }
}

function compare(ref: Float32Array, got: Float32Array): { cosine: number; maxAbs: number } {
  let dot = 0;
  let a = 0;
  let b = 0;
  let maxAbs = 0;
  for (let i = 0; i < ref.length; i++) {
    dot += ref[i] * got[i];
    a += ref[i] * ref[i];
    b += got[i] * got[i];
    maxAbs = Math.max(maxAbs, Math.abs(ref[i] - got[i]));
  }
  return { cosine: dot / Math.sqrt(a * b), maxAbs };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-quantize-'));
  try {
    const modelFile = join(dir, 'mlp.onnx');
    writeSynthetic(mlpStack({ layers: 6, hidden: 768, ff: 3072 }), modelFile);
    const inBytes = statSync(modelFile).size;
    const inMb = inBytes / 1e6;
    console.log("Step only (read → quantize → write), not the user's path: see bench/build.ts for `onnx-compress build`.");
    console.log(`model: ${modelFile} ${(inBytes / 1e6).toFixed(2)} MB; node ${process.version}; runs ${RUNS}`);
    const runner = await bundleRunner(dir);

    const bare = Array.from({ length: RUNS }, () => timed(['-e', '0']));
    const bareWall = median(bare.map((r) => r.wall));
    const bareRss = median(bare.map((r) => r.rssMb));
    const bareCpu = median(bare.map((r) => r.cpu));
    const x = input(42, [2, 128, 768]);
    const ref = await outputOf(modelFile, x);

    interface Row {
      label: string;
      wall: number;
      cpu: number;
      rss: number;
      bytes: number;
      cosine: number;
      maxAbs: number;
      mode?: Mode;
      note?: string;
    }
    const rows: Row[] = [];
    for (const mode of modes) {
      if (ONLY && !mode.label.includes(ONLY)) continue;
      const out = join(dir, `out-${rows.length}.onnx`);
      const runs = Array.from({ length: RUNS }, () => timed([runner, modelFile, out, JSON.stringify(mode.params)]));
      const acc = compare(ref, await outputOf(out, x));
      rows.push({ label: mode.label, wall: median(runs.map((r) => r.wall)), cpu: median(runs.map((r) => r.cpu)), rss: median(runs.map((r) => r.rssMb)), bytes: statSync(out).size / 1e6, ...acc, mode });
      const py = PYTHON ? pythonScript(mode, modelFile, join(dir, 'py.onnx')) : undefined;
      if (py) {
        const pyRuns = Array.from({ length: RUNS }, () => timedExec([PYTHON!, '-c', py]));
        const pyAcc = compare(ref, await outputOf(join(dir, 'py.onnx'), x));
        rows.push({ label: `  ORT Python, same model`, wall: median(pyRuns.map((r) => r.wall)), cpu: median(pyRuns.map((r) => r.cpu)), rss: median(pyRuns.map((r) => r.rssMb)), bytes: statSync(join(dir, 'py.onnx')).size / 1e6, ...pyAcc, note: 'measured in this run' });
      }
    }

    if (GPTQ) {
      const calibration: Sample[] = Array.from({ length: 32 }, (_, i) => ({ feeds: { input: input(1000 + i, [1, 128, 768]) } }));
      const model = readModel(modelFile);
      const t0 = performance.now();
      const params: QuantizeStep = { ...base, dtype: 'int4', granularity: 32, method: 'gptq' };
      const { model: q } = await quantizeStep(params, { intraOpThreads: 2 })(model, { file: modelFile, original: model, calibration, device: 'cpu', seed: 0, log: () => {} });
      const s = (performance.now() - t0) / 1000;
      const out = join(dir, 'out-gptq.onnx');
      writeModel(q, out);
      const acc = compare(ref, await outputOf(out, x));
      rows.push({ label: 'int4 block 32 sym GPTQ', wall: NaN, cpu: NaN, rss: NaN, bytes: statSync(out).size / 1e6, ...acc, note: `in-process ${s.toFixed(1)} s incl. calibration (32 × [1,128,768])` });
    }

    const f = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : '—');
    const check = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? ' ok' : ' FAIL');
    const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
    console.log(`\nnode bare start-up: ${f(bareWall, 3)} s wall, ${f(bareCpu, 3)} s CPU, ${f(bareRss, 0)} MB RSS (median of ${RUNS}); load average ${load} on ${availableParallelism()} cores`);
    console.log('\n| mode | wall s | CPU s | peak RSS MB (×input) | output MB (×input) | cosine | max abs | reference (docs/facts.md, Python quantizer) |');
    console.log('|---|---|---|---|---|---|---|---|');
    for (const r of rows) {
      const b = r.mode?.budget ?? {};
      const rr = r.mode?.ref;
      const wall = `${f(r.wall, 3)}${check(b.wall === undefined ? undefined : r.wall <= b.wall)}`;
      const rss = `${f(r.rss, 0)} (${f(r.rss / inMb, 2)}×)${check(b.rssRatio === undefined ? undefined : r.rss <= b.rssRatio * inMb)}`;
      const bytes = `${f(r.bytes, 2)} (${f(r.bytes / inMb, 3)}×)${check(b.bytesRatio === undefined ? undefined : r.bytes <= b.bytesRatio * inMb)}`;
      const cos = `${r.cosine.toFixed(6)}${check(b.cosine === undefined ? undefined : r.cosine >= b.cosine)}`;
      const refText = rr ? `${rr.label}: ${rr.wall} s, ${rr.rss} MB, ${rr.bytes} MB, cos ${rr.cosine}, max ${rr.maxAbs}` : (r.note ?? '');
      console.log(`| ${r.label} | ${wall} | ${f(r.cpu, 3)} | ${rss} | ${bytes} | ${cos} | ${r.maxAbs.toFixed(4)} | ${refText} |`);
    }
    const rtn4 = rows.find((r) => r.label.startsWith('int4 block 32 sym (')); 
    const gptq = rows.find((r) => r.label.includes('GPTQ'));
    if (rtn4 && gptq) console.log(`\nGPTQ vs RTN int4 block 32: cosine ${gptq.cosine.toFixed(6)} vs ${rtn4.cosine.toFixed(6)}${check(gptq.cosine > rtn4.cosine)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
