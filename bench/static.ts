/**
 * Static int8 against float32, weight-only int8 and dynamic int8, built on the user's path
 * (`node dist/cli.js build` with a recipe; only inference is timed here):
 *
 * - Fashion-MNIST CNN: calibrated on the first 1,000 t10k images; accuracy against the labels of the
 *   other 9,000 (held out), top-1 agreement and cosine with float32.
 * - the spam transformer (MatMul-heavy): calibrated on the first 200 e-mails, evaluated on the other 800.
 *
 * Latency: onnxruntime-node, one intra-op and one inter-op thread, no spinning, graph optimization
 * level all (what a user's session gets), every model's session open at once and run in rotation
 * (interleaved), median and p90 of --runs calls after warm-up; at batch 1 and at batch 32 (CNN). The
 * floor is a second float32 session in the same rotation: its ratio to the first is this machine's
 * noise. onnxruntime-web (wasm backend, run from Node, one thread): whether each model loads and runs,
 * its largest |Δ| from onnxruntime-node, and its latency in the same rotation. What onnxruntime fused:
 * the op types of its optimized graph (SessionOptions.optimizedModelFilePath).
 *
 *   npx tsx bench/static.ts [--runs 2000] [--no-spam]   → stdout table + bench/out/static.json
 * Targets (Fashion-MNIST, static uint8 minmax): ≤ 0.5 point accuracy drop, ≥ 1.3× faster than float32
 * in onnxruntime-node single-threaded (batch 1).
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { rotation, type Runner } from './lib/stats.js';
import type { Sample } from '../src/data/types.js';
import { readModel } from '../src/onnx/io.js';
import { checkWebCompatibility } from '../src/transforms/quantize/webcheck.js';
import { loadFashionMnist, loadSpamTestSet } from './lib/fixtures.js';
import { loadAverage, machineInfo } from './lib/machine.js';
import { writeNpy } from './lib/npy.js';
import { fmtBytes, fmtRatio, markdownTable, mark, median, percentile } from './lib/stats.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf('--runs') + 1] ?? 2000) || 2000;
const SPAM = !args.includes('--no-spam');
const OUT = join(root, 'bench', 'out');
const work = join(OUT, 'static-work');
const log = (m: string) => console.error(`static: ${m} (load ${loadAverage()})`);

interface Variant {
  id: string;
  label: string;
  /** The quantize block (absent: the float32 source itself). */
  quantize?: string;
}

const CNN_VARIANTS: Variant[] = [
  { id: 'fp32', label: 'float32' },
  { id: 'w8', label: 'int8 weight-only (DequantizeLinear, target wasm)', quantize: '{ dtype: int8 }' },
  { id: 'dyn8', label: 'int8 dynamic (DynamicQuantizeLinear + MatMulInteger, target node)', quantize: '{ dtype: int8, target: node }' },
  { id: 'su8mm', label: 'static uint8, minmax', quantize: '{ dtype: int8, activations: uint8, calibrate: minmax }' },
  { id: 'su8pc', label: 'static uint8, percentile 99.99', quantize: '{ dtype: int8, activations: uint8, calibrate: percentile }' },
  { id: 'su8en', label: 'static uint8, entropy', quantize: '{ dtype: int8, activations: uint8, calibrate: entropy }' },
  { id: 'si8mm', label: 'static int8, minmax', quantize: '{ dtype: int8, activations: int8, calibrate: minmax }' },
];
const SPAM_VARIANTS: Variant[] = CNN_VARIANTS.filter((v) => ['fp32', 'w8', 'dyn8', 'su8mm', 'su8en'].includes(v.id));

interface Fixture {
  name: string;
  source: string;
  /** The one model input and its batch of `n` samples. */
  input: string;
  calibration: Sample[];
  heldOut: Sample[];
  variants: Variant[];
  batches: number[];
}

/** Writes `<input>.npy` + `labels.npy` for samples of one input. */
function writeData(dir: string, input: string, samples: Sample[]): void {
  mkdirSync(dir, { recursive: true });
  const t0 = samples[0].feeds[input];
  const per = t0.data.length;
  const shape = [samples.length, ...t0.dims.slice(1)];
  if (t0.type === 'float32') {
    const all = new Float32Array(samples.length * per);
    samples.forEach((s, i) => all.set(s.feeds[input].data as Float32Array, i * per));
    writeNpy(join(dir, `${input}.npy`), all, shape);
  } else {
    const all = new BigInt64Array(samples.length * per);
    samples.forEach((s, i) => all.set(s.feeds[input].data as BigInt64Array, i * per));
    writeNpy(join(dir, `${input}.npy`), all, shape);
  }
  writeNpy(join(dir, 'labels.npy'), BigInt64Array.from(samples, (s) => BigInt(s.label as number)), [samples.length]);
}

/** Builds every variant with the CLI (one recipe, one process); returns variant id → output file. */
function build(fx: Fixture): { files: Map<string, string>; ms: number } {
  const dir = join(work, fx.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  copyFileSync(fx.source, join(dir, 'model.onnx'));
  writeData(join(dir, 'calib'), fx.input, fx.calibration);
  const quantized = fx.variants.filter((v) => v.quantize);
  const recipe = [
    'defaults:',
    '  device: cpu',
    'models:',
    `  ${fx.name}:`,
    '    source: model.onnx',
    `    calibration: { data: ./calib, samples: ${fx.calibration.length} }`,
    '    variants:',
    ...quantized.map((v) => `      ${v.id}: { quantize: ${v.quantize} }`),
    '',
  ].join('\n');
  writeFileSync(join(dir, 'compress.yaml'), recipe);
  const t0 = performance.now();
  execFileSync(process.execPath, [join(root, 'dist', 'cli.js'), 'build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--no-cache', '--quiet'], { stdio: ['ignore', 'ignore', 'inherit'] });
  const ms = performance.now() - t0;
  const files = new Map<string, string>([['fp32', fx.source]]);
  for (const v of quantized) files.set(v.id, join(dir, 'out', `${fx.name}.${v.id}.onnx`));
  // The main build has no quantize block: it is only there to carry the variants.
  return { files, ms };
}

function stack(samples: Sample[], input: string, at: number, n: number): Record<string, ort.Tensor> {
  const t0 = samples[0].feeds[input];
  const per = t0.data.length;
  const dims = [n, ...t0.dims.slice(1)];
  const fill = <T extends Float32Array | BigInt64Array>(data: T) => {
    for (let b = 0; b < n; b++) (data as Float32Array).set(samples[(at + b) % samples.length].feeds[input].data as Float32Array, b * per);
    return data;
  };
  if (t0.type === 'float32') return { [input]: new ort.Tensor('float32', fill(new Float32Array(n * per)), dims) };
  return { [input]: new ort.Tensor('int64', fill(new BigInt64Array(n * per)), dims) };
}

interface Quality {
  accuracy: number;
  agreement: number;
  cosine: number;
}

async function quality(fx: Fixture, file: string, reference: Float32Array[]): Promise<{ q: Quality; logits: Float32Array[] }> {
  const s = await ort.InferenceSession.create(file, { intraOpNumThreads: 2, logSeverityLevel: 3 });
  const out = s.outputNames[0];
  const logits: Float32Array[] = [];
  const B = 250;
  for (let i = 0; i < fx.heldOut.length; i += B) {
    const n = Math.min(B, fx.heldOut.length - i);
    const y = (await s.run(stack(fx.heldOut, fx.input, i, n)))[out];
    const row = y.data.length / n;
    for (let j = 0; j < n; j++) logits.push((y.data as Float32Array).slice(j * row, (j + 1) * row));
  }
  await s.release();
  const argmax = (x: Float32Array) => x.indexOf(Math.max(...x));
  let correct = 0;
  let agree = 0;
  let cos = 0;
  logits.forEach((y, i) => {
    if (argmax(y) === fx.heldOut[i].label) correct++;
    const r = reference[i] ?? y;
    if (argmax(y) === argmax(r)) agree++;
    let d = 0;
    let a = 0;
    let b = 0;
    for (let k = 0; k < y.length; k++) {
      d += y[k] * r[k];
      a += y[k] * y[k];
      b += r[k] * r[k];
    }
    cos += d / Math.sqrt(a * b);
  });
  return { q: { accuracy: correct / logits.length, agreement: agree / logits.length, cosine: cos / logits.length }, logits };
}

/** Op types of onnxruntime's optimized graph. */
async function fusedOps(file: string): Promise<string> {
  const path = `${file}.optimized.onnx`;
  const s = await ort.InferenceSession.create(file, { graphOptimizationLevel: 'all', optimizedModelFilePath: path, intraOpNumThreads: 1, logSeverityLevel: 3 });
  await s.release();
  const ops = new Map<string, number>();
  for (const n of readModel(path).graph!.node) ops.set(n.opType!, (ops.get(n.opType!) ?? 0) + 1);
  rmSync(path, { force: true });
  const shown = ['QLinearConv', 'QGemm', 'QLinearMatMul', 'MatMulIntegerToFloat', 'DynamicQuantizeMatMul', 'MatMulInteger', 'MatMulNBits', 'QuantizeLinear', 'DequantizeLinear', 'Conv', 'FusedConv', 'Gemm', 'FusedGemm', 'MatMul', 'FusedMatMul'];
  return shown.filter((o) => ops.has(o)).map((o) => `${o} ×${ops.get(o)}`).join(', ');
}


interface Row {
  id: string;
  label: string;
  bytes: number;
  quality: Quality;
  fused: string;
  node: Record<number, { median: number; p90: number }>;
  web: { loads: boolean; error?: string; maxAbsDiff?: number; median?: Record<number, number> };
}

async function benchFixture(fx: Fixture): Promise<{ rows: Row[]; floor: Record<number, number>; buildMs: number }> {
  log(`${fx.name}: building ${fx.variants.length - 1} variants with the CLI`);
  const { files, ms: buildMs } = build(fx);
  const rows: Row[] = [];
  let reference: Float32Array[] = [];
  for (const v of fx.variants) {
    const file = files.get(v.id)!;
    const { q, logits } = await quality(fx, file, reference);
    if (v.id === 'fp32') reference = logits;
    rows.push({ id: v.id, label: v.label, bytes: readFileSync(file).byteLength, quality: q, fused: await fusedOps(file), node: {}, web: { loads: false } });
    log(`${fx.name} ${v.id}: accuracy ${q.accuracy.toFixed(4)}, agreement ${q.agreement.toFixed(4)}`);
  }
  // onnxruntime-node: every variant plus a second float32 session (the floor), interleaved.
  const opts: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3, extra: { session: { intra_op: { allow_spinning: '0' } } } };
  const sessions = await Promise.all([...fx.variants.map((v) => ort.InferenceSession.create(files.get(v.id)!, opts)), ort.InferenceSession.create(fx.source, opts)]);
  const floor: Record<number, number> = {};
  for (const b of fx.batches) {
    const runs = b === 1 ? RUNS : Math.max(200, Math.round(RUNS / 8));
    log(`${fx.name}: onnxruntime-node batch ${b}, ${runs} rounds`);
    const t = await rotation(sessions, (i) => stack(fx.heldOut, fx.input, i * b, b), runs, 20);
    rows.forEach((r, k) => (r.node[b] = { median: median(t[k]), p90: percentile(t[k], 90) }));
    floor[b] = median(t[0]) / median(t[t.length - 1]);
  }
  await Promise.all(sessions.map((s) => s.release()));
  // onnxruntime-web (wasm): loads, agrees, and how fast.
  const web = ((await import('onnxruntime-web')) as unknown as { default?: typeof import('onnxruntime-web') }).default ?? (await import('onnxruntime-web'));
  web.env.wasm.numThreads = 1;
  web.env.logLevel = 'error';
  const webRunners: { k: number; s: Awaited<ReturnType<typeof web.InferenceSession.create>> }[] = [];
  for (const [k, r] of rows.entries()) {
    const file = files.get(r.id)!;
    try {
      const check = await checkWebCompatibility(new Uint8Array(readFileSync(file)), fx.heldOut.slice(0, 32), { rel: 0.01 });
      r.web = { loads: true, maxAbsDiff: Math.max(...check.outputs.map((o) => o.maxAbsDiff)) };
      webRunners.push({ k, s: await web.InferenceSession.create(new Uint8Array(readFileSync(file)), { executionProviders: ['wasm'], graphOptimizationLevel: 'all' }) });
    } catch (e) {
      r.web = { loads: false, error: (e as Error).message.slice(0, 200) };
    }
  }
  for (const b of fx.batches) {
    const runs = Math.max(30, Math.round((b === 1 ? RUNS / 4 : RUNS / (4 * b))));
    log(`${fx.name}: onnxruntime-web wasm batch ${b}, ${runs} rounds`);
    const feeds = (i: number) => {
      const f = stack(fx.heldOut, fx.input, i * b, b)[fx.input];
      return { [fx.input]: new web.Tensor(f.type as 'float32', f.data as Float32Array, f.dims) } as unknown as Record<string, ort.Tensor>;
    };
    const t = await rotation(webRunners.map((w) => w.s) as unknown as Runner[], feeds, runs, 10);
    webRunners.forEach((w, i) => ((rows[w.k].web.median ??= {})[b] = median(t[i])));
  }
  await Promise.all(webRunners.map((w) => w.s.release()));
  return { rows, floor, buildMs };
}

async function main(): Promise<void> {
  const m = machineInfo();
  if (!existsSync(join(root, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: npm run build first');
  mkdirSync(OUT, { recursive: true });
  log(`start, ${RUNS} runs`);
  const F = join(root, 'test', 'fixtures');
  const fmnist = loadFashionMnist(join(F, 'fmnist-cnn', 't10k-images-idx3-ubyte.gz'), join(F, 'fmnist-cnn', 't10k-labels-idx1-ubyte.gz'));
  const fixtures: Fixture[] = [
    { name: 'fmnist', source: join(F, 'fmnist-cnn', 'model.onnx'), input: 'image', calibration: fmnist.slice(0, 1000), heldOut: fmnist.slice(1000), variants: CNN_VARIANTS, batches: [1, 32] },
  ];
  if (SPAM) {
    const spam = loadSpamTestSet(join(F, 'spam-tinybert', 'test-split.json'));
    fixtures.push({ name: 'spam', source: join(F, 'spam-tinybert', 'model.onnx'), input: 'input_ids', calibration: spam.slice(0, 200), heldOut: spam.slice(200), variants: SPAM_VARIANTS, batches: [1] });
  }
  const md: string[] = [
    `## Static int8 (bench/static.ts)`,
    '',
    `Built with \`node dist/cli.js build\` (variants of one recipe, calibration data = the first samples, held out from the figures); inference only is timed: onnxruntime-node ${m.onnxruntimeNode}, 1 thread, no spinning, optimization level all, all sessions interleaved, median (p90) of ${RUNS} calls at batch 1; onnxruntime-web wasm from Node, 1 thread. ${m.cpu}, ${m.cores} cores, SIMD ${m.simd.join(' ') || '–'}.`,
    '',
  ];
  const targets: { what: string; target: string; value: string; floor?: string; met: boolean | undefined }[] = [];
  const result: Record<string, unknown> = { machine: m, runs: RUNS };
  for (const fx of fixtures) {
    const { rows, floor, buildMs } = await benchFixture(fx);
    result[fx.name] = { rows, floor, buildMs };
    const fp = rows[0];
    const headers = ['variant', 'bytes', 'accuracy', 'drop', 'agreement', 'cosine', ...fx.batches.flatMap((b) => [`node b${b} median (p90)`, `vs fp32`]), ...fx.batches.map((b) => `wasm b${b} (vs fp32)`), 'wasm max |Δ| vs node', 'onnxruntime runs it as'];
    const table = rows.map((r) => [
      r.label,
      fmtBytes(r.bytes),
      (100 * r.quality.accuracy).toFixed(2) + ' %',
      r === fp ? '' : ((fp.quality.accuracy - r.quality.accuracy) * 100).toFixed(2) + ' pt',
      r === fp ? '' : (100 * r.quality.agreement).toFixed(2) + ' %',
      r === fp ? '' : r.quality.cosine.toFixed(5),
      ...fx.batches.flatMap((b) => [`${(r.node[b].median * 1000).toFixed(0)} µs (${(r.node[b].p90 * 1000).toFixed(0)})`, fmtRatio(fp.node[b].median / r.node[b].median)]),
      ...fx.batches.map((b) => (r.web.loads && r.web.median ? `${(r.web.median[b] * 1000).toFixed(0)} µs (${fmtRatio(fp.web.median![b] / r.web.median[b])})` : `does not load: ${r.web.error}`)),
      r.web.maxAbsDiff === undefined ? '–' : r.web.maxAbsDiff.toPrecision(2),
      r.fused,
    ]);
    md.push(`### ${fx.name === 'fmnist' ? 'Fashion-MNIST CNN' : 'spam transformer'}: ${fx.calibration.length} calibration samples, ${fx.heldOut.length} held out; build of all variants ${(buildMs / 1000).toFixed(1)} s`, '');
    md.push(markdownTable(headers, table), '');
    md.push(`Floor (a second float32 session in the same rotation): ${fx.batches.map((b) => `batch ${b} ${fmtRatio(floor[b])}`).join(', ')}.`, '');
    if (fx.name === 'fmnist') {
      const s = rows.find((r) => r.id === 'su8mm')!;
      const drop = fp.quality.accuracy - s.quality.accuracy;
      const speed = fp.node[1].median / s.node[1].median;
      targets.push({ what: 'Fashion-MNIST static uint8 (minmax): accuracy drop on 9,000 held-out images', target: '≤ 0.5 pt', value: `${(drop * 100).toFixed(2)} pt`, met: drop <= 0.005 });
      targets.push({ what: 'Fashion-MNIST static uint8 (minmax): onnxruntime-node 1 thread, batch 1, vs float32', target: '≥ 1.3×', value: fmtRatio(speed), floor: fmtRatio(floor[1]), met: speed >= 1.3 });
      const web = s.web.loads && s.web.median ? fp.web.median![1] / s.web.median[1] : undefined;
      targets.push({ what: 'Fashion-MNIST static uint8 (minmax): loads in onnxruntime-web wasm, faster than float32 there (batch 1)', target: 'loads, > 1×', value: web === undefined ? 'does not load' : fmtRatio(web), met: web !== undefined && web > 1 });
    }
  }
  md.push(markdownTable(['target', 'goal', 'measured', 'floor', ''], targets.map((t) => [t.what, t.target, t.value, t.floor ?? '', mark(t.met)])), '');
  md.push(`Load average at the end ${loadAverage()}.`);
  const markdown = md.join('\n');
  console.log(markdown);
  writeFileSync(join(OUT, 'static.json'), JSON.stringify({ ...result, markdown, targets }, null, 1));
  rmSync(work, { recursive: true, force: true });
}

await main();
