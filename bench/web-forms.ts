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
 * Per model: the session's creation (the runtime already started, as on a page that loaded it once)
 * and the median of `--runs` calls after `--warm` warm-up calls, with the ratio to float32's median.
 *
 *   npx tsx bench/web-forms.ts [--runs 10] [--warm 3] [--families stack,spam,fmnist]
 *
 * Needs dist/ (npm run build). Writes bench/out/web-forms.json ({ markdown, rows }).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
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
const WARM = Number(opt('--warm') ?? 3);
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

const ortWeb = createRequire(path.join(ROOT, 'package.json')).resolve('onnxruntime-web');
const dir = mkdtempSync(path.join(os.tmpdir(), 'web-forms-'));
const rows: { family: string; input: string; form: string; bytes: number; createMs?: number; runMs?: number; ratio?: number; error?: string }[] = [];
try {
  const families = FAMILY_LIST.filter((f) => FAMILIES.includes(f.id));
  const sources = Object.fromEntries(families.map((f) => [f.id, f.source(dir)]));
  // Every form of every family through the command line, as a user builds them (no web check: this bench runs them there).
  const recipe = ['models:', ...families.flatMap((f) => FORMS.map((q) => `  ${f.id}-${q.id}:\n    source: ${JSON.stringify(sources[f.id])}\n    webCheck: false\n    quantize: ${q.yaml}`))].join('\n');
  writeFileSync(path.join(dir, 'compress.yaml'), recipe + '\n');
  process.stderr.write(`building ${families.length * FORMS.length} outputs …\n`);
  execFileSync(process.execPath, [path.join(ROOT, 'dist/cli.js'), 'build', '--no-cache', '--out', 'out', '--quiet'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });

  for (const f of families) {
    process.stderr.write(`${f.label}: timing in onnxruntime-web …\n`);
    const models = [{ name: 'float32', file: sources[f.id] }, ...FORMS.map((q) => ({ name: q.id, file: path.join(dir, 'out', `${f.id}-${q.id}.onnx`) }))];
    const jobFile = path.join(dir, `${f.id}.job.json`);
    writeFileSync(jobFile, JSON.stringify({ ort: ortWeb, models, inputs: f.inputs, runs: RUNS, warm: WARM }));
    const out = JSON.parse(execFileSync(process.execPath, [path.join(ROOT, 'bench/lib/web-time.cjs'), jobFile], { encoding: 'utf8', maxBuffer: 1 << 24 })) as {
      create: Record<string, number>;
      runs: Record<string, Record<string, number[]>>;
      error: Record<string, string>;
    };
    for (const input of f.inputs) {
      const base = out.runs[input.label]?.float32;
      for (const m of models) {
        const ts = out.runs[input.label]?.[m.name];
        const runMs = ts?.length ? median(ts) : undefined;
        rows.push({
          family: f.label,
          input: input.label,
          form: m.name === 'float32' ? 'float32 (source)' : FORMS.find((q) => q.id === m.name)!.label,
          bytes: statSync(m.file).size,
          createMs: out.create[m.name],
          runMs,
          ratio: runMs !== undefined && base?.length ? runMs / median(base) : undefined,
          error: out.error[m.name],
        });
      }
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const m = machineInfo();
const markdown = [
  `onnxruntime-web (wasm, 1 thread, V8's default tiering) from Node ${process.version}; session creation with the runtime started, median of ${RUNS} runs after ${WARM} warm-up runs, every model of a row group in turn; ${m.cpu}, ${m.cores} cores.`,
  '',
  markdownTable(
    ['model', 'input', 'form', 'bytes', 'session creation', 'run (median)', 'run vs float32'],
    rows.map((r) => [r.family, r.input, r.form, fmtBytes(r.bytes), r.createMs !== undefined ? fmtMs(r.createMs) : '✗', r.error && r.runMs === undefined ? `✗ ${r.error.slice(0, 60)}` : r.runMs !== undefined ? fmtMs(r.runMs) : '', r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '']),
    ['left', 'left', 'left', 'right', 'right', 'right', 'right'],
  ),
].join('\n');
console.log(markdown);
mkdirSync(path.join(ROOT, 'bench/out'), { recursive: true });
writeFileSync(path.join(ROOT, 'bench/out/web-forms.json'), JSON.stringify({ markdown, rows }, null, 2));
