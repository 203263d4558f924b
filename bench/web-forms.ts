/**
 * How fast each quantized form runs in the browser's runtime: onnxruntime-web's wasm backend (1 thread,
 * V8's default tiering, run from Node), against the float32 source in the same process and rounds.
 *
 * Models: the 113 MB FFN stack of bench/lib/synthetic.ts at sequence length 1 (one token: a decoder's
 * step, a single embedding) and 128 (a sentence), the spam transformer (input_ids [1, 128]) and the
 * Fashion-MNIST CNN ([1, 1, 28, 28]) of test/fixtures. Forms, each built by `onnx-compress build`:
 *
 *   int8           dtype int8, target wasm (the default): DequantizeLinear → MatMul / Conv
 *   int8 dynamic   dtype int8, format dynamic: DynamicQuantizeLinear → MatMulInteger / ConvInteger
 *   int4           dtype int4, block 32: com.microsoft MatMulNBits (Conv stays 8-bit per channel)
 *   float16        dtype float16
 *
 * Measured with the tool's own onnxruntime-web paths (dist/runtime/web.js), what a build reports:
 *   run    webLatency, what `evaluate.web` puts in the manifest: the form and its float32 source in one
 *          child, warmed up until their runs stop getting faster (V8 optimizes hot wasm functions only
 *          after they ran a while), then `--runs` runs each, interleaved; median, and the ratio to
 *          float32's median of the same call
 *   load   runWeb, the web check's load of the model (its `loadMs`; that child runs wasm on V8's baseline
 *          compiler only, as the check always has)
 *
 *   npx tsx bench/web-forms.ts [--runs 10] [--families stack,spam,fmnist]
 *
 * Needs dist/ (npm run build). Writes bench/out/web-forms.json ({ markdown, rows }).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineInfo } from './lib/machine.js';
import { mlpStack, writeSynthetic } from './lib/synthetic.js';
import { fmtBytes, fmtMs, markdownTable, median } from './lib/stats.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const RUNS = Number(opt('--runs') ?? 10);
const FAMILIES = (opt('--families') ?? 'stack,spam,fmnist').split(',');

interface Feed {
  type: 'float32' | 'int64';
  dims: number[];
  fill: 'sin' | number;
}
interface Family {
  id: string;
  label: string;
  /** The source model (a function: the stack is written on demand). */
  source: (dir: string) => string;
  inputs: { label: string; feeds: Record<string, Feed> }[];
}

const FAMILY_LIST: Family[] = [
  {
    id: 'stack',
    label: 'FFN stack, 113 MB',
    source: (dir) => {
      const file = path.join(dir, 'stack.onnx');
      writeSynthetic(mlpStack({ layers: 6, hidden: 768, ff: 3072 }), file);
      return file;
    },
    inputs: [
      { label: 'seq 1', feeds: { input: { type: 'float32', dims: [1, 1, 768], fill: 'sin' } } },
      { label: 'seq 128', feeds: { input: { type: 'float32', dims: [1, 128, 768], fill: 'sin' } } },
    ],
  },
  {
    id: 'spam',
    label: 'spam transformer, 1.3 MB',
    source: () => path.join(ROOT, 'test/fixtures/spam-tinybert/model.onnx'),
    inputs: [{ label: '128 tokens', feeds: { input_ids: { type: 'int64', dims: [1, 128], fill: 65 } } }],
  },
  {
    id: 'fmnist',
    label: 'Fashion-MNIST CNN, 3.3 MB',
    source: () => path.join(ROOT, 'test/fixtures/fmnist-cnn/model.onnx'),
    inputs: [{ label: '1 image', feeds: { image: { type: 'float32', dims: [1, 1, 28, 28], fill: 'sin' } } }],
  },
];

const FORMS: { id: string; label: string; yaml: string }[] = [
  { id: 'int8', label: 'int8 (default: DequantizeLinear)', yaml: '{ dtype: int8 }' },
  { id: 'int8dyn', label: 'int8, format: dynamic (MatMulInteger)', yaml: '{ dtype: int8, format: dynamic }' },
  { id: 'int4', label: 'int4 block 32 (MatMulNBits)', yaml: '{ dtype: int4, granularity: 32 }' },
  { id: 'fp16', label: 'float16', yaml: '{ dtype: float16 }' },
];

type Web = typeof import('../src/runtime/web.js');
const web = (await import(path.join(ROOT, 'dist/runtime/web.js'))) as Web;
const ort = web.resolveOrtWeb(ROOT);
if (!ort) throw new Error('onnxruntime-web is not installed (npm ci)');

/** A feed as the web children take it. */
function wire(f: Feed): import('../src/runtime/web.js').WireTensor {
  const n = f.dims.reduce((a, b) => a * b, 1);
  if (f.type === 'int64') return { type: 'int64', dims: f.dims, data: new BigInt64Array(n).fill(BigInt(f.fill as number)) };
  return { type: 'float32', dims: f.dims, data: Float32Array.from({ length: n }, (_, i) => (f.fill === 'sin' ? Math.sin(i) : (f.fill as number))) };
}

const dir = mkdtempSync(path.join(os.tmpdir(), 'web-forms-'));
const rows: { family: string; input: string; form: string; bytes: number; loadMs?: number; runMs?: number; ratio?: number; error?: string }[] = [];
try {
  const families = FAMILY_LIST.filter((f) => FAMILIES.includes(f.id));
  const sources = Object.fromEntries(families.map((f) => [f.id, f.source(dir)]));
  // Every form of every family through the command line, as a user builds them (no web check: this bench runs them there).
  const recipe = ['models:', ...families.flatMap((f) => FORMS.map((q) => `  ${f.id}-${q.id}:\n    source: ${JSON.stringify(sources[f.id])}\n    webCheck: false\n    quantize: ${q.yaml}`))].join('\n');
  writeFileSync(path.join(dir, 'compress.yaml'), recipe + '\n');
  process.stderr.write(`building ${families.length * FORMS.length} outputs …\n`);
  execFileSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'build', '--no-cache', '--out', 'out', '--quiet'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });

  for (const f of families) {
    process.stderr.write(`${f.label}: onnxruntime-web …\n`);
    const forms = FORMS.map((q) => ({ ...q, file: path.join(dir, 'out', `${f.id}-${q.id}.onnx`) }));
    const wired = (feeds: Record<string, Feed>) => Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, wire(v)]));
    const load = async (file: string) => {
      const r = await web.runWeb(ort, file, wired(f.inputs[0].feeds));
      return r.ok ? r.loadMs : undefined;
    };
    const sourceLoad = await load(sources[f.id]);
    const loads = new Map<string, number | undefined>();
    for (const q of forms) loads.set(q.id, await load(q.file));
    for (const input of f.inputs) {
      const feeds = wired(input.feeds);
      const base: number[] = [];
      for (const q of forms) {
        const r = await web.webLatency(ort, sources[f.id], q.file, { original: feeds, compressed: feeds }, { runs: RUNS });
        const runMs = r.ok ? median(r.compressed) : undefined;
        if (r.ok && r.original) base.push(median(r.original));
        rows.push({
          family: f.label,
          input: input.label,
          form: q.label,
          bytes: statSync(q.file).size,
          loadMs: loads.get(q.id),
          runMs,
          ratio: r.ok && r.original ? median(r.compressed) / median(r.original) : undefined,
          ...(!r.ok && { error: r.message }),
        });
      }
      // float32's own row: the median over the calls above (each timed it beside one form).
      rows.splice(rows.length - forms.length, 0, { family: f.label, input: input.label, form: 'float32 (source)', bytes: statSync(sources[f.id]).size, loadMs: sourceLoad, runMs: base.length ? median(base) : undefined, ratio: 1 });
    }
  }
} finally {
  web.closeWebPool();
  rmSync(dir, { recursive: true, force: true });
}

const m = machineInfo();
const markdown = [
  `onnxruntime-web (wasm, 1 thread, V8's default tiering) from Node ${process.version}; run: the tool's web latency (each form beside its float32 source in one child, warmed up until the runs settle, then ${RUNS} runs each, interleaved; median, ratio to float32 in the same call); load: the web check's (baseline compiler); ${m.cpu}, ${m.cores} cores.`,
  '',
  markdownTable(
    ['model', 'input', 'form', 'bytes', 'load (web check)', 'run (median)', 'run vs float32'],
    rows.map((r) => [r.family, r.input, r.form, fmtBytes(r.bytes), r.loadMs !== undefined ? fmtMs(r.loadMs) : '✗', r.error && r.runMs === undefined ? `✗ ${r.error.slice(0, 60)}` : r.runMs !== undefined ? fmtMs(r.runMs) : '', r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '']),
    ['left', 'left', 'left', 'right', 'right', 'right', 'right'],
  ),
].join('\n');
console.log(markdown);
mkdirSync(path.join(ROOT, 'bench/out'), { recursive: true });
writeFileSync(path.join(ROOT, 'bench/out/web-forms.json'), JSON.stringify({ markdown, rows }, null, 2));
