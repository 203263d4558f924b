/**
 * Static int8 on real models of the zoo (bench/lib/zoo.ts), as a build runs it (simplify, then quantize),
 * calibrated on the zoo's calibration modules (test/fixtures/zoo/calib-*.mjs) and measured on its
 * held-out ones (other audio, texts and fonts), against onnxruntime:
 *
 * - openWakeWord's embedding CNN runs in integers from its first QuantizeLinear to its last
 *   DequantizeLinear (QLinearConv, QLinearLeakyRelu with the Max(x, −0.4) after it folded, uint8 MaxPool);
 * - the mel spectrogram: 8-bit activations in front of its mel MatMul (a power spectrum, then a log) lose
 *   the quiet bins; the activation guard keeps them float;
 * - the PaddleOCR angle classifier: its squeeze-excitation Convs keep float activations (one position per
 *   sample), the rest is fused;
 * - the PP-OCRv4 detector: all activations 8-bit, its probability map falls far from float32; the guard
 *   keeps the ones that cost most float and the held-out map stays within the zoo's 8-bit floor.
 * Full figures (latency in onnxruntime-node and -web, every calibration method): bench/static-zoo.ts.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { optimizedOps } from './ort-graph.js';
import { Ajv } from 'ajv';
import { ZOO } from '../bench/lib/zoo.js';
import { cli } from './cli-run.js';
import { loadSamples } from '../src/data/load.js';
import type { Sample } from '../src/data/types.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { readModel } from '../src/onnx/io.js';
import type { ModelProto } from '../src/onnx/types.js';
import { quantizeDefaults } from '../src/recipe/load.js';
import type { QuantizeStep } from '../src/recipe/types.js';
import { inputSpecs } from '../src/runtime/session.js';
import { checkWebCompatibility, quantizeStep } from '../src/transforms/quantize/index.js';
import { simplifyStep } from '../src/transforms/simplify/index.js';
import type { LayerReport, StepReport } from '../src/transforms/types.js';

const tmp = mkdtempSync(join(tmpdir(), 'static-zoo-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const fixtures = new URL('./fixtures/zoo/', import.meta.url).pathname;
const zoo = (name: string) => ZOO.find((m) => m.name === name)!;

interface Loaded {
  source: ModelProto;
  simplified: ModelProto;
  calibration: Sample[];
  heldOut: Sample[];
}
const loaded = new Map<string, Loaded>();
async function load(name: string): Promise<Loaded> {
  if (loaded.has(name)) return loaded.get(name)!;
  const m = zoo(name);
  const source = readModel(m.file);
  const simplified = (await simplifyStep()(source, { file: m.file, original: source, device: 'cpu', seed: 0, log: () => {} })).model;
  const specs = inputSpecs(source);
  const l = { source, simplified, calibration: await loadSamples({ data: join(fixtures, m.calibration), samples: 128 }, specs), heldOut: await loadSamples({ data: join(fixtures, m.data) }, specs) };
  loaded.set(name, l);
  return l;
}

async function staticBuild(name: string, params: Partial<QuantizeStep> = {}): Promise<{ model: ModelProto; report: StepReport; cosine: number; agreement: number }> {
  const l = await load(name);
  const file = zoo(name).file;
  const { model, report } = await quantizeStep({ ...quantizeDefaults('int8'), activations: 'uint8', calibrate: 'minmax', activationCosine: 0.995, ...params }, { intraOpThreads: 2 })(l.simplified, { file, original: l.simplified, calibration: l.calibration, device: 'cpu', seed: 0, log: () => {} });
  const ev = await evaluateModels(l.source, model, l.heldOut, { runs: 0, intraOpThreads: 2 });
  return { model, report, cosine: ev.metrics.cosine, agreement: ev.metrics.agreement };
}

type StaticLayer = LayerReport & { activations?: string; activationsReason?: string };
const layers = (r: StepReport) => r.layers as StaticLayer[];

describe('static int8 on the zoo (held-out data)', () => {
  it('openWakeWord embedding CNN: integers from the first QuantizeLinear to the last DequantizeLinear; cosine ≥ 0.99; same in onnxruntime-web', { timeout: 120_000 }, async () => {
    const { model, report, cosine } = await staticBuild('oww-embedding');
    const ops = await optimizedOps(model, join(tmp, 'oww.optimized.onnx'));
    console.log(`oww-embedding static uint8: held-out cosine ${cosine.toFixed(5)}; onnxruntime runs ${JSON.stringify(ops)}`);
    expect(ops.QLinearConv).toBe(20);
    expect(ops.QLinearLeakyRelu).toBe(19);
    for (const op of ['Conv', 'FusedConv', 'LeakyRelu', 'Max']) expect(ops[op], op).toBeUndefined();
    expect(ops.QuantizeLinear).toBe(1);
    expect(ops.DequantizeLinear).toBe(1);
    expect((report.totals!.static as { foldedRelu: number }).foldedRelu).toBe(19);
    expect(cosine).toBeGreaterThanOrEqual(zoo('oww-embedding').floors.eight.minCosine!);
    const l = await load('oww-embedding');
    const web = await checkWebCompatibility(model, l.heldOut.slice(0, 2), {});
    expect(web.outputs[0].maxAbsDiff).toBeLessThanOrEqual(web.outputs[0].allowed);
  });

  it('melspectrogram: 8-bit activations before the mel MatMul lose the quiet bins (cosine < 0.99); the guard keeps them float', { timeout: 120_000 }, async () => {
    const off = await staticBuild('melspectrogram', { activationCosine: 0 });
    const on = await staticBuild('melspectrogram');
    console.log(`melspectrogram static uint8: guard off cosine ${off.cosine.toFixed(5)}, on ${on.cosine.toFixed(5)}; guard ${JSON.stringify(on.report.totals!.static)}`);
    expect(off.cosine).toBeLessThan(0.99);
    expect(on.cosine).toBeGreaterThanOrEqual(zoo('melspectrogram').floors.eight.minCosine!);
    const mel = layers(on.report).find((l) => l.op === 'MatMul')!;
    expect(mel.activations).toBe('float32');
    expect(mel.activationsReason).toMatch(/activation guard/);
    expect(on.report.warnings.join('\n')).toMatch(/keep float activations \(kept float by the activation guard/);
  });

  it('PaddleOCR angle classifier: squeeze-excitation Convs keep float activations, the others are fused; agreement 1 and cosine ≥ 0.99', { timeout: 120_000 }, async () => {
    const { model, report, cosine, agreement } = await staticBuild('ppocr-cls');
    const se = layers(report).filter((l) => /one position per sample/.test(l.activationsReason ?? ''));
    const fused = layers(report).filter((l) => l.activations === 'uint8');
    const ops = await optimizedOps(model, join(tmp, 'cls.optimized.onnx'));
    console.log(`ppocr-cls static uint8: cosine ${cosine.toFixed(5)}, agreement ${agreement}; ${fused.length} layers 8-bit, ${se.length} squeeze-excitation; onnxruntime runs ${JSON.stringify(ops)}`);
    expect(se.length).toBe(18); // nine squeeze-excitation blocks of two 1×1 Convs (the tenth GlobalAveragePool is the head's)
    expect(ops.QLinearConv).toBeGreaterThanOrEqual(fused.filter((l) => l.op === 'Conv').length);
    expect(agreement).toBe(1);
    expect(cosine).toBeGreaterThanOrEqual(0.99);
  });

  it('PP-OCRv4 detector: all activations 8-bit, the map falls below 0.9 cosine; with the guard it meets the 8-bit floor (0.99)', { timeout: 240_000 }, async () => {
    const off = await staticBuild('ppocr-det', { activationCosine: 0 });
    const on = await staticBuild('ppocr-det');
    const guard = (on.report.totals!.static as { guard: { cosine: number; cosineAfter: number; kept: unknown[]; ms: number } }).guard;
    console.log(`ppocr-det static uint8: guard off cosine ${off.cosine.toFixed(5)}, on ${on.cosine.toFixed(5)}; guard on calibration ${guard.cosine.toFixed(4)} → ${guard.cosineAfter.toFixed(4)}, ${guard.kept.length} activations kept float, ${(guard.ms / 1000).toFixed(1)} s`);
    expect(off.cosine).toBeLessThan(0.9);
    expect(guard.cosineAfter).toBeGreaterThanOrEqual(0.995);
    expect(on.cosine).toBeGreaterThanOrEqual(zoo('ppocr-det').floors.eight.minCosine!);
    expect(layers(on.report).some((l) => l.activations === 'uint8')).toBe(true);
    // onnxruntime-web: runs it; where its integer kernels round an activation one step away from
    // onnxruntime-node's, the map differs by less than the build's own 8-bit error against float32.
    const l = await load('ppocr-det');
    const s = await ort.InferenceSession.create(encodeModelToBytes(l.source), { intraOpNumThreads: 1, logSeverityLevel: 3 });
    const floatOutputs = [];
    for (const x of l.heldOut) floatOutputs.push({ [s.outputNames[0]]: ((await s.run(x.feeds as Record<string, ort.Tensor>))[s.outputNames[0]].data as Float32Array).slice() });
    await s.release();
    const web = await checkWebCompatibility(on.model, l.heldOut, { floatOutputs });
    console.log(`ppocr-det static uint8 in onnxruntime-web: ${JSON.stringify(web.outputs)}`);
    const o = web.outputs[0];
    if (o.rms) expect(o.rms.web).toBeLessThanOrEqual(o.rms.quantization);
    else expect(o.maxAbsDiff).toBeLessThanOrEqual(o.allowed);
  });

  it('onnx-compress build (PP-OCRv4 det, percentile): the manifest is valid and the build\'s web check passes it (element-wise, or within the model\'s own 8-bit error)', { timeout: 300_000 }, async () => {
    const m = zoo('ppocr-det');
    const dir = join(tmp, 'det-cli');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'compress.yaml'),
      [
        'defaults:',
        '  device: cpu',
        'models:',
        '  det:',
        `    source: ${JSON.stringify(m.file)}`,
        `    calibration: { data: ${JSON.stringify(join(fixtures, m.calibration))} }`,
        '    quantize: { dtype: int8, activations: uint8, calibrate: percentile }',
        `    evaluate: { data: ${JSON.stringify(join(fixtures, m.data))}, runs: 0 }`,
        '',
      ].join('\n'),
    );
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--no-cache', '--quiet');
    expect(r.code, r.err).toBe(0);
    const manifest = JSON.parse(readFileSync(join(dir, 'out', 'det.manifest.json'), 'utf8'));
    const validate = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync('schemas/manifest.schema.json', 'utf8')));
    expect(validate(manifest), JSON.stringify(validate.errors)).toBe(true);
    console.log(`ppocr-det static uint8 percentile (CLI): web check ${JSON.stringify(manifest.webCheck)}; cosine ${manifest.accuracy.metrics.cosine}`);
    expect(manifest.webCheck).toMatchObject({ checked: true, loads: true });
    for (const o of manifest.webCheck.outputs) {
      expect(o.ok, o.name).toBe(true);
      if (o.maxAbsDiff > o.allowed) expect(o.rms.web).toBeLessThanOrEqual(o.rms.quantization);
    }
    expect(r.err).not.toMatch(/web check/);
  });
});
