/**
 * A model that really aborts onnxruntime natively (no signal sent by the test): a GRU whose input X has
 * a 0 sequence length (test/fixtures/crash/gru-seq0.onnx, 189 bytes: ONNX's test_gru_defaults with
 * X dim 0 set to 0, found by mutating the ONNX test models). onnxruntime-node 1.30 ends the process with
 * "terminate called without an active exception" (SIGABRT) when it runs it. The build must report
 * "onnxruntime crashed …" for that model, exit 2 (the source is at fault), and still write the others.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli } from './cli-run.js';

const GRU = resolve('test/fixtures/crash/gru-seq0.onnx');
const FMNIST = resolve('test/fixtures/fmnist-cnn/model.onnx');
const tmp = mkdtempSync(join(tmpdir(), 'native-crash-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('a model that aborts onnxruntime natively', () => {
  it('the fixture really aborts a process that runs it in onnxruntime', () => {
    const script = `
      const ort = require('onnxruntime-node');
      (async () => {
        const s = await ort.InferenceSession.create(${JSON.stringify(GRU)});
        const t = (d) => new ort.Tensor('float32', new Float32Array(d.reduce((a, b) => a * b, 1)), d);
        await s.run({ X: t([0, 3, 2]), W: t([1, 15, 2]), R: t([1, 15, 5]) });
        console.log('ran');
      })();`;
    const p = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(p.signal, p.stderr).toBe('SIGABRT');
    expect(p.stderr).toMatch(/terminate called without an active exception/);
  }, 60_000);

  it('the build reports the crash for that model, exits 2, and writes the other models', async () => {
    copyFileSync(GRU, join(tmp, 'gru.onnx'));
    copyFileSync(FMNIST, join(tmp, 'fmnist.onnx'));
    // With steps, the source is probed before them; without steps, the output is probed at verification
    // and the source is then probed too, to blame the right model.
    writeFileSync(
      join(tmp, 'compress.yaml'),
      'defaults:\n  device: cpu\nmodels:\n  gru:\n    source: gru.onnx\n    quantize: { dtype: int8 }\n' +
        '  gru-plain:\n    source: gru.onnx\n    simplify: false\n  fmnist:\n    source: fmnist.onnx\n    quantize: { dtype: int8 }\n',
    );
    const out = join(tmp, 'dist');
    const r = await cli('build', join(tmp, 'compress.yaml'), '--out', out, '--no-cache', '--json');
    expect(r.code, r.err).toBe(2);
    const rows = JSON.parse(r.out) as { id: string; error?: string; exitCode?: number; output?: string }[];
    const byId = Object.fromEntries(rows.map((x) => [x.id, x]));
    // Where it is caught (a probe before the steps, or at verification, re-run on the source) is the
    // pipeline's business; the message says it crashed, on which file, and that the source is at fault.
    expect(byId.gru.error).toMatch(/gru\.onnx: (gru: )?onnxruntime crashed on the model \(during [^)]*on the source model\): the process was killed by SIGABRT$/);
    expect(byId.gru.exitCode).toBe(2);
    expect(byId['gru-plain'].error).toMatch(/gru\.onnx: (gru-plain: )?onnxruntime crashed on the model \(during [^)]*on the source model\): the process was killed by SIGABRT$/);
    expect(byId['gru-plain'].exitCode).toBe(2);
    expect(byId.fmnist.error).toBeUndefined();
    expect(existsSync(join(out, 'fmnist.onnx')) && existsSync(join(out, 'fmnist.manifest.json'))).toBe(true);
    expect(existsSync(join(out, 'gru.onnx'))).toBe(false);
  }, 180_000);
});
