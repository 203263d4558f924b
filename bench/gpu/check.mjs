// GPU check, run on a lent NVIDIA machine by bench/gpu/run.sh (see bench/gpu/README.md).
// Uses the compiled dist/ and the fixture loaders bundled by pack.sh: opens sessions with device 'gpu' (CUDA EP, then WebGPU on Vulkan), evaluates
// both fixtures and their quantized forms on the GPU and on the CPU, and compares the two.
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { readModel } from '../../dist/onnx/io.js';
import { encodeModelToBytes } from '../../dist/onnx/codec.js';
import { probeGpu, openSession } from '../../dist/runtime/session.js';
import { evaluateModels } from '../../dist/eval/evaluate.js';
import { loadSpamTestSet, loadFashionMnist } from '../out/gpu/fixtures.mjs';

const out = { probe: await probeGpu(), runs: [] };
console.log('probe', JSON.stringify(out.probe));
const fx = 'test/fixtures';
const models = {
  fmnist: { file: `${fx}/fmnist-cnn/model.onnx`, samples: loadFashionMnist(`${fx}/fmnist-cnn/t10k-images-idx3-ubyte.gz`, `${fx}/fmnist-cnn/t10k-labels-idx1-ubyte.gz`) },
  spam: { file: `${fx}/spam-tinybert/model.onnx`, samples: loadSpamTestSet(`${fx}/spam-tinybert/test-split.json`) },
};
let quantizeStep;
try { ({ quantizeStep } = await import('../../dist/transforms/quantize/index.js')); } catch (e) { console.log('no quantize step:', e.message); }
const q = (dtype, extra = {}) => ({ dtype, granularity: dtype.endsWith('4') ? 32 : 'per-channel', symmetric: !dtype.startsWith('u'), method: 'rtn', actOrder: false, target: 'webgpu', float16: dtype === 'float16', keepIoTypes: true, keepFloat32Ops: [], include: [], exclude: [], ...extra });
const variants = [['fp32', null], ['int8', q('int8')], ['int4', q('int4')], ['float16', q('float16')]];

for (const [name, m] of Object.entries(models)) {
  const original = readModel(m.file);
  for (const [label, params] of variants) {
    if (params && !quantizeStep) continue;
    let compressed = original;
    if (params) {
      const ctx = { file: m.file, original, device: 'cpu', seed: 0, log() {} };
      compressed = (await quantizeStep(params)(original, ctx)).model;
    }
    const bytes = encodeModelToBytes(compressed);
    const row = { model: name, variant: label, bytes: bytes.length };
    for (const device of ['cpu', 'gpu']) {
      const t0 = performance.now();
      try {
        const r = await evaluateModels(encodeModelToBytes(original), bytes, m.samples, { device, runs: 20, batch: name === 'spam' ? 64 : 256, intraOpThreads: 4 });
        row[device] = { device: r.device, ms: Math.round(performance.now() - t0), accOriginal: r.original.accuracy, accCompressed: r.compressed.accuracy, agreement: r.metrics.agreement, cosine: r.metrics.cosine, nonFinite: r.nonFinite, latencyMs: r.compressed.latencyMs, warnings: r.warnings };
      } catch (e) {
        row[device] = { error: String(e.message).slice(0, 400) };
      }
    }
    // The same compressed model on CPU and GPU: how far apart are the logits?
    try {
      const cpu = await openSession(bytes, { device: 'cpu' });
      const gpu = await openSession(bytes, { device: 'gpu' });
      const feeds = m.samples[0].feeds;
      const a = Object.values(await cpu.session.run(feeds))[0].data;
      const b = Object.values(await gpu.session.run(feeds))[0].data;
      let max = 0; for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(Number(a[i]) - Number(b[i])));
      row.cpuVsGpuMaxAbs = max;
    } catch (e) { row.cpuVsGpuError = String(e.message).slice(0, 300); }
    console.log(JSON.stringify(row));
    out.runs.push(row);
  }
}
writeFileSync(`${process.env.OUT ?? '.'}/gpu.json`, JSON.stringify(out, null, 2));
