/**
 * A build that reads calibration or evaluation data starts its child processes (the onnxruntime
 * isolation child, onnxruntime-web's child for the web check) only once those data are loaded: data
 * that fail to load end the build, and children started for nothing competed with that failure for the
 * CPU (a corpus case of an infinite data module: 2.6–3.4 s of wall time without them, 3.0–5.2 s with).
 * One exception: evaluation data are read after the steps, and verification needs the isolation child
 * right after them, so that child (~0.4 s of CPU to start, against ~0.8 s for onnxruntime-web's) starts
 * once the calibration data, if any, are loaded.
 * Children are found as this process's children in /proc (Linux).
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CompressError } from '../src/errors.js';
import { compressRecipe } from '../src/pipeline.js';
import { loadRecipe } from '../src/recipe/index.js';
import { closeIsolatedPool } from '../src/runtime/isolate.js';
import { closeWebPool } from '../src/runtime/web.js';

const tmp = mkdtempSync(join(tmpdir(), 'data-first-'));
afterAll(() => {
  closeIsolatedPool();
  closeWebPool();
  rmSync(tmp, { recursive: true, force: true });
});

/** Ends the pools' children and waits until they are gone. */
async function closeChildren(): Promise<void> {
  closeIsolatedPool();
  closeWebPool();
  for (let i = 0; i < 100 && children().length; i++) await new Promise((r) => setTimeout(r, 50));
}

/** Which of the two child processes this process has running now. */
function children(): string[] {
  const found = new Set<string>();
  for (const tid of readdirSync('/proc/self/task')) {
    let pids: string[] = [];
    try {
      pids = readFileSync(`/proc/self/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      continue; // the thread ended
    }
    for (const pid of pids) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        for (const name of ['isolate-child', 'web-child']) if (cmd.includes(name)) found.add(name);
      } catch {
        // the child ended
      }
    }
  }
  return [...found].sort();
}

async function build(name: string, data: string, module: string) {
  const dir = join(tmp, name);
  mkdirSync(dir);
  copyFileSync(resolve('test/fixtures/fmnist-cnn/model.onnx'), join(dir, 'fmnist.onnx'));
  writeFileSync(join(dir, 'data.mjs'), module);
  writeFileSync(join(dir, 'compress.yaml'), `defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n    ${data}: { data: data.mjs }\n${data === 'calibration' ? '    quantize: { dtype: int8, activations: uint8 }\n' : ''}`);
  const recipe = await loadRecipe(join(dir, 'compress.yaml'));
  return compressRecipe(recipe, { cacheDir: false, concurrency: 1 });
}

describe.runIf(process.platform === 'linux')('child processes start once the data are loaded', () => {
  for (const data of ['evaluate', 'calibration']) {
    it(`${data} data that fail to load: ${data === 'evaluate' ? "onnxruntime-web's child was not started" : 'no child process was started'}`, async () => {
      expect(children()).toEqual([]);
      const e = await build(`bad-${data}`, data, 'export default function () { throw null; }').catch((x: unknown) => x);
      expect(e).toBeInstanceOf(CompressError);
      expect((e as CompressError).message).toMatch(/data\.mjs: the module's sample function threw: null/);
      expect(children()).toEqual(data === 'evaluate' ? ['isolate-child'] : []);
      await closeChildren();
    }, 120_000);
  }

  it('the same build with good data starts both (the check above sees them)', async () => {
    const good = 'export default function* () { for (let i = 0; i < 4; i++) yield { inputs: { image: new Float32Array(784).fill(i / 4) }, label: i }; }';
    const [r] = await build('good', 'evaluate', good);
    expect(r.manifest.webCheck?.checked).toBe(true);
    expect(children()).toEqual(['isolate-child', 'web-child']);
  }, 120_000);
});
