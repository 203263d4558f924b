/**
 * The simplify step on real models: nodes (in every graph, subgraphs included) and bytes before/after, the
 * step's own time, and onnxruntime-node latency of the original and the simplified model side by side
 * (single thread, default optimization level 'all', median of --runs after 5 warm-up runs), plus
 * session-creation time (median of 5). The floor is a second session of the original model, timed in the
 * same rotation (original, copy, simplified): its ratio to the original is this machine's noise.
 * Outputs are compared on the same feeds (max relative difference).
 *
 * Models: the two fixtures, Silero VAD legacy and v5, a few libonnx-testdata models, and a synthetic
 * exporter-style CNN (Conv → BatchNormalization → Relu ×4, opset 13) and transformer MLP block
 * (decomposed LayerNorm and GELU, opset 20) built with the graph builders.
 *
 *   npx tsx bench/simplify.ts [--runs 20]      → stdout table + bench/out/simplify.json
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { decodeModel, decodeTensor, encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType, dataTypeName } from '../src/onnx/dtypes.js';
import { makeAttribute, makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor, tensorValues } from '../src/onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../src/onnx/types.js';
import { seededRandom } from '../src/random.js';
import { simplifyStep } from '../src/transforms/simplify/index.js';
import { nodeCount } from '../src/transforms/simplify/pass.js';
import { fmtBytes, fmtMs, fmtRatio, markdownTable, median } from './lib/stats.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf('--runs') + 1] ?? 20) || 20;
const DATA = process.env.LIBONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data';
type Feeds = Record<string, ort.Tensor>;
const rand = seededRandom(11);
const floats = (n: number, s = 1) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * s);
const F = DataType.FLOAT;
const ft = (name: string, dims: number[], s = 0.1) => makeTensor(name, F, dims, floats(dims.reduce((a, b) => a * b, 1), s));

/** Conv(3×3, pad 1) → BatchNormalization → Relu, ×4, 32 → 64 channels on 56×56, then GlobalAveragePool. */
function exportedCnn(): ModelProto {
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  let x = 'image';
  let cin = 32;
  for (let i = 0; i < 4; i++) {
    const c = 64;
    inits.push(ft(`w${i}`, [c, cin, 3, 3]), ft(`b${i}`, [c]), ft(`s${i}`, [c], 1), ft(`o${i}`, [c]), ft(`m${i}`, [c]), makeTensor(`v${i}`, F, [c], Float32Array.from({ length: c }, () => 0.5 + rand())));
    nodes.push(
      makeNode('Conv', [x, `w${i}`, `b${i}`], [`c${i}`], { attributes: [makeAttribute('pads', [1, 1, 1, 1], true)] }),
      makeNode('BatchNormalization', [`c${i}`, `s${i}`, `o${i}`, `m${i}`, `v${i}`], [`n${i}`]),
      makeNode('Relu', [`n${i}`], [`r${i}`]),
    );
    x = `r${i}`;
    cin = c;
  }
  nodes.push(makeNode('GlobalAveragePool', [x], ['pooled']), makeNode('Flatten', ['pooled'], ['features']));
  return makeModel(makeGraph('cnn', nodes, [makeValueInfo('image', F, ['batch', 32, 56, 56])], [makeValueInfo('features', F, ['batch', 64])], inits), 13);
}

/** x → decomposed LayerNorm → MatMul+Add (2-D) → decomposed GELU (erf) → MatMul+Add, d=256, ff=1024, opset 20. */
function exportedMlp(): ModelProto {
  const d = 256;
  const ff = 1024;
  const s = (name: string, v: number) => makeTensor(name, F, [], Float32Array.of(v));
  const nodes = [
    makeNode('ReduceMean', ['x', 'axes'], ['mean']),
    makeNode('Sub', ['x', 'mean'], ['dx']),
    makeNode('Pow', ['dx', 'two'], ['sq']),
    makeNode('ReduceMean', ['sq', 'axes'], ['var']),
    makeNode('Add', ['var', 'eps'], ['ve']),
    makeNode('Sqrt', ['ve'], ['sd']),
    makeNode('Div', ['dx', 'sd'], ['nx']),
    makeNode('Mul', ['nx', 'gamma'], ['gx']),
    makeNode('Add', ['gx', 'beta'], ['ln']),
    makeNode('MatMul', ['ln', 'w1'], ['h0']),
    makeNode('Add', ['h0', 'b1'], ['h']),
    makeNode('Div', ['h', 'sqrt2'], ['hs']),
    makeNode('Erf', ['hs'], ['e']),
    makeNode('Add', ['e', 'one'], ['e1']),
    makeNode('Mul', ['h', 'e1'], ['he']),
    makeNode('Mul', ['he', 'half'], ['g']),
    makeNode('MatMul', ['g', 'w2'], ['y0']),
    makeNode('Add', ['y0', 'b2'], ['y']),
  ];
  const inits = [
    makeTensor('axes', DataType.INT64, [1], BigInt64Array.of(-1n)),
    s('two', 2), s('eps', 1e-5), s('sqrt2', Math.SQRT2), s('one', 1), s('half', 0.5),
    ft('gamma', [d], 1), ft('beta', [d]), ft('w1', [d, ff], 0.06), ft('b1', [ff]), ft('w2', [ff, d], 0.03), ft('b2', [d]),
  ];
  return makeModel(makeGraph('mlp', nodes, [makeValueInfo('x', F, ['tokens', d])], [makeValueInfo('y', F, ['tokens', d])], inits), 20);
}

function testdataFeeds(model: ModelProto, dir: string): Feeds {
  const inits = new Set(model.graph!.initializer.map((t) => t.name));
  const feeds: Feeds = {};
  model.graph!.input.filter((i) => !inits.has(i.name)).forEach((vi, k) => {
    const t = decodeTensor(readFileSync(join(dir, 'test_data_set_0', `input_${k}.pb`)));
    feeds[vi.name!] = new ort.Tensor(dataTypeName(t.dataType!) as 'float32', tensorValues(t) as Float32Array, t.dims.map(Number));
  });
  return feeds;
}

const sr = () => new ort.Tensor('int64', BigInt64Array.of(16000n), []);
const tensor = (dims: number[], s = 1) => new ort.Tensor('float32', floats(dims.reduce((a, b) => a * b, 1), s), dims);
const vad = join(root, 'node_modules/@ricky0123/vad-web/dist');

const MODELS: { name: string; load: () => ModelProto; feeds: (m: ModelProto) => Feeds }[] = [
  {
    name: 'spam-tinybert',
    load: () => decodeModel(readFileSync(join(root, 'test/fixtures/spam-tinybert/model.onnx'))),
    feeds: () => {
      const rows = (JSON.parse(readFileSync(join(root, 'test/fixtures/spam-tinybert/test-split.json'), 'utf8')) as { input_ids: number[][] }).input_ids.slice(0, 8);
      return { input_ids: new ort.Tensor('int64', BigInt64Array.from(rows.flat(), (v) => BigInt(v)), [8, 128]) };
    },
  },
  { name: 'fmnist-cnn', load: () => decodeModel(readFileSync(join(root, 'test/fixtures/fmnist-cnn/model.onnx'))), feeds: () => ({ image: tensor([8, 1, 28, 28]) }) },
  {
    name: 'silero VAD legacy',
    load: () => decodeModel(readFileSync(join(vad, 'silero_vad_legacy.onnx'))),
    feeds: () => ({ input: tensor([1, 1536], 0.3), sr: sr(), h: new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]), c: new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]) }),
  },
  {
    name: 'silero VAD v5',
    load: () => decodeModel(readFileSync(join(vad, 'silero_vad_v5.onnx'))),
    feeds: () => ({ input: tensor([1, 576], 0.3), state: new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]), sr: sr() }),
  },
  { name: 'CNN Conv+BN ×4 (synthetic, opset 13)', load: exportedCnn, feeds: () => ({ image: tensor([1, 32, 56, 56]) }) },
  { name: 'MLP block, decomposed LN + GELU (synthetic, opset 20)', load: exportedMlp, feeds: () => ({ x: tensor([128, 256]) }) },
  ...['node/test_hannwindow_expanded', 'node/test_layer_normalization_4d_axis_negative_1_expanded', 'node/test_nllloss_NCd1d2d3_none_no_weight_negative_ii_expanded', 'node/test_mvn_expanded', 'pytorch-converted/test_Conv2d_groups']
    .filter((rel) => existsSync(join(DATA, rel)))
    .map((rel) => ({ name: `libonnx-testdata ${rel}`, load: () => decodeModel(readFileSync(join(DATA, rel, 'model.onnx'))), feeds: (m: ModelProto) => testdataFeeds(m, join(DATA, rel)) })),
];

const SESSION: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 3 };

function maxRel(a: Record<string, ort.Tensor>, b: Record<string, ort.Tensor>): number {
  let worst = 0;
  for (const [k, t] of Object.entries(a)) {
    const p = t.data as ArrayLike<number>;
    const q = b[k].data as ArrayLike<number>;
    if (t.type !== 'float32') {
      for (let i = 0; i < p.length; i++) if (p[i] !== q[i]) return Infinity;
      continue;
    }
    let scale = 0;
    let diff = 0;
    for (let i = 0; i < p.length; i++) {
      scale = Math.max(scale, Math.abs(p[i]));
      diff = Math.max(diff, Math.abs(p[i] - q[i]));
    }
    worst = Math.max(worst, diff ? diff / scale : 0);
  }
  return worst;
}

async function createMs(bytes: Uint8Array): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const s = await ort.InferenceSession.create(bytes, SESSION);
    times.push(performance.now() - t);
    await s.release();
  }
  return median(times);
}

const rows: (string | number)[][] = [];
const results: Record<string, unknown>[] = [];
for (const m of MODELS) {
  const model = m.load();
  const feeds = m.feeds(model);
  const t0 = performance.now();
  const r = await simplifyStep()(model, { file: m.name, original: model, device: 'cpu', seed: 1, log: () => {}, calibration: [{ feeds }] });
  const stepMs = performance.now() - t0;
  const [a, b] = [encodeModelToBytes(model), encodeModelToBytes(r.model)];
  const [sa, sa2, sb] = [await ort.InferenceSession.create(a, SESSION), await ort.InferenceSession.create(a, SESSION), await ort.InferenceSession.create(b, SESSION)];
  const oa = (await sa.run(feeds)) as Record<string, ort.Tensor>;
  const ob = (await sb.run(feeds)) as Record<string, ort.Tensor>;
  const rel = maxRel(oa, ob);
  for (let i = 0; i < 5; i++) for (const s of [sa, sa2, sb]) await s.run(feeds);
  const ta: number[] = [];
  const ta2: number[] = [];
  const tb: number[] = [];
  const order: [ort.InferenceSession, number[]][] = [
    [sa, ta],
    [sa2, ta2],
    [sb, tb],
  ];
  for (let i = 0; i < RUNS; i++) {
    for (let k = 0; k < 3; k++) {
      const [s, out] = order[(i + k) % 3];
      const t = performance.now();
      await s.run(feeds);
      out.push(performance.now() - t);
    }
  }
  for (const s of [sa, sa2, sb]) await s.release();
  const [ca, cb] = [await createMs(a), await createMs(b)];
  const la = median(ta);
  const la2 = median(ta2);
  const lb = median(tb);
  const [na, nb] = [nodeCount(model), nodeCount(r.model)];
  const passes = ((r.report.totals as { passes: { pass: string; nodes: number[] }[] }).passes ?? []).map((p) => `${p.pass} −${p.nodes[0] - p.nodes[1]}`);
  rows.push([m.name, `${na} → ${nb}`, `${fmtBytes(a.byteLength)} → ${fmtBytes(b.byteLength)}`, `${fmtMs(la)} → ${fmtMs(lb)} (${fmtRatio(la / lb)})`, fmtRatio(la / la2), `${fmtMs(ca)} → ${fmtMs(cb)}`, rel.toExponential(1), fmtMs(stepMs), passes.join(', ') || '—']);
  results.push({ name: m.name, nodes: [na, nb], bytes: [a.byteLength, b.byteLength], latencyMs: [la, lb], floorRatio: la / la2, createMs: [ca, cb], maxRelDiff: rel, stepMs, warnings: r.report.warnings, passes: r.report.totals });
  console.log(rows.at(-1)!.join(' | '));
}

const headers = ['model', 'nodes (all graphs)', 'bytes', `latency median of ${RUNS} (speed-up)`, 'floor: original vs itself', 'session create', 'max rel. diff', 'simplify time', 'passes (nodes removed)'];
const markdown = `onnxruntime-node ${ort.env.versions.node ?? ''}, 1 thread, optimization level 'all', runs interleaved.\n\n${markdownTable(headers, rows)}`;
const targets = [
  { what: 'outputs unchanged (max relative difference)', target: '≤ 1e-5', value: Math.max(...results.map((x) => x.maxRelDiff as number)).toExponential(1), met: results.every((x) => (x.maxRelDiff as number) <= 1e-5) },
  { what: 'never more nodes', target: 'after ≤ before', value: `${results.filter((x) => (x.nodes as number[])[1] < (x.nodes as number[])[0]).length}/${results.length} models fewer`, met: results.every((x) => (x.nodes as number[])[1] <= (x.nodes as number[])[0]) },
  {
    what: 'never slower (latency ratio original/simplified, worst model)',
    target: '≥ the worst original-vs-itself ratio of the same run',
    value: fmtRatio(Math.min(...results.map((x) => (x.latencyMs as number[])[0] / (x.latencyMs as number[])[1]))),
    floor: fmtRatio(Math.min(...results.map((x) => x.floorRatio as number))),
    met: Math.min(...results.map((x) => (x.latencyMs as number[])[0] / (x.latencyMs as number[])[1])) >= Math.min(...results.map((x) => x.floorRatio as number)),
  },
];
console.log(`\n${markdown}`);
mkdirSync(join(root, 'bench/out'), { recursive: true });
writeFileSync(join(root, 'bench/out/simplify.json'), JSON.stringify({ runs: RUNS, results, markdown, targets }, null, 2));
