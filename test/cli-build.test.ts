/**
 * `onnx-compress build` and `onnx-compress validate`, through `main` (src/cli.ts) with output captured,
 * plus one real process for the exit code and stdout of the installed command's path.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './cli-run.js';
import { parseBuildArgs } from '../src/cli/build.js';
import { createReporter } from '../src/cli/reporter.js';
import type { PipelineEvent } from '../src/pipeline.js';

const FMNIST = resolve('test/fixtures/fmnist-cnn/model.onnx');
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const validateManifest = new Ajv({ allErrors: true, allowUnionTypes: true }).compile(JSON.parse(readFileSync(resolve('schemas/manifest.schema.json'), 'utf8')));

let tmp: string;
let n = 0;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'cli-build-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function project(recipe: string): string {
  const dir = join(tmp, `p${n++}`);
  mkdirSync(dir);
  copyFileSync(FMNIST, join(dir, 'fmnist.onnx'));
  writeFileSync(join(dir, 'compress.yaml'), recipe);
  return dir;
}


const RECIPE = `defaults:
  device: cpu
models:
  fmnist:
    source: fmnist.onnx
  copy:
    source: fmnist.onnx
    output: nested/copy.onnx
`;

describe('build', () => {
  it('writes onnx-compress.json and the HTML report, beside the models or in --report-dir', async () => {
    const dir = project(RECIPE);
    const beside = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--cache-dir', join(dir, 'cache'), '--quiet');
    expect(beside.code, beside.err).toBe(0);
    const aggregate = JSON.parse(readFileSync(join(dir, 'out', 'onnx-compress.json'), 'utf8'));
    expect(Object.keys(aggregate.models).sort()).toEqual(['copy', 'fmnist']);
    expect(aggregate.models.copy.file).toBe('nested/copy.onnx');
    expect(readFileSync(join(dir, 'out', 'onnx-compress-report.html'), 'utf8')).toContain('<svg');

    const apart = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'deploy'), '--report-dir', join(dir, 'reports'), '--cache-dir', join(dir, 'cache'), '--quiet');
    expect(apart.code, apart.err).toBe(0);
    // Only the models in the deployed folder; manifests and reports elsewhere.
    expect(existsSync(join(dir, 'deploy', 'fmnist.onnx'))).toBe(true);
    for (const f of ['fmnist.manifest.json', 'onnx-compress.json', 'onnx-compress-report.html']) {
      expect(existsSync(join(dir, 'deploy', f)), f).toBe(false);
      expect(existsSync(join(dir, 'reports', f)), f).toBe(true);
    }
  });

  it('writes every model and manifest, prints a --json summary, and hits the cache the second time', async () => {
    const dir = project(RECIPE);
    const args = ['build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--cache-dir', join(dir, 'cache'), '--json'];
    const first = await cli(...args);
    expect(first.code, first.err).toBe(0);
    const rows = JSON.parse(first.out);
    expect(rows).toHaveLength(2);
    const size = statSync(FMNIST).size;
    expect(rows[0]).toEqual({
      id: 'fmnist',
      output: join(dir, 'out', 'fmnist.onnx'),
      manifest: join(dir, 'out', 'fmnist.manifest.json'),
      bytesBefore: size,
      bytesAfter: size,
      webCheck: { checked: true, agrees: true },
      cached: false,
      ms: expect.any(Number), // the build's own time
    });
    expect(rows[1]).toMatchObject({ id: 'copy', output: join(dir, 'out', 'nested', 'copy.onnx'), manifest: join(dir, 'out', 'copy.manifest.json') });
    for (const r of rows) {
      const m = JSON.parse(readFileSync(r.manifest, 'utf8'));
      expect(validateManifest(m), JSON.stringify(validateManifest.errors)).toBe(true);
      expect(m.output.sha256).toBe(sha(readFileSync(r.output)));
    }
    const second = await cli(...args);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.out).map((r: { cached: boolean }) => r.cached)).toEqual([true, true]);
  });

  it('prints a table without --json, and honours --no-cache', async () => {
    const dir = project(RECIPE);
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'dist'), '--no-cache');
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^model\s+before\s+after\s+ratio/m);
    expect(r.out).toMatch(/^fmnist\s+3\.3 MB\s+3\.3 MB\s+1\.00×/m);
    expect(r.out).toMatch(/2\/2 models written to /);
    // One line per model on a cold build (stderr is not a terminal here), nothing else.
    expect(r.err.split('\n').filter(Boolean).map((l) => l.replace(/ in [\d.]+ s,/, ' in T,')).sort()).toEqual(['copy: done in T, 3.3 MB → 3.3 MB (1.00×)', 'fmnist: done in T, 3.3 MB → 3.3 MB (1.00×)']);
    expect(existsSync(join(dir, 'node_modules'))).toBe(false);
    expect(existsSync(join(dir, 'dist', 'nested', 'copy.onnx'))).toBe(true);
  });

  it('exits 1 on a budget violation, naming the metric and the recipe position; --budget warn passes', async () => {
    const dir = project(`defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n    budget: { maxBytes: 1000 }\n`);
    const args = ['build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'), '--cache-dir', join(dir, 'cache')];
    const r = await cli(...args);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/compress\.yaml:6:5: fmnist: over budget: size 3299246 > maxBytes 1000/);
    expect(existsSync(join(dir, 'out', 'fmnist.onnx'))).toBe(false);
    const w = await cli(...args, '--budget', 'warn', '--json');
    expect(w.code).toBe(0);
    expect(w.err).toMatch(/warning: fmnist: budget: size 3299246 > maxBytes 1000/);
    const m = JSON.parse(readFileSync(join(dir, 'out', 'fmnist.manifest.json'), 'utf8'));
    expect(m.warnings).toContain('budget: size 3299246 > maxBytes 1000');
  });

  it('exits 2 on an invalid recipe with file:line:col, and writes nothing', async () => {
    const dir = project(`models:\n  fmnist:\n    source: fmnist.onnx\n    quantize: { dtype: int9 }\n`);
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'out'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/compress\.yaml:4:\d+: .*quantize\.dtype: expected one of/);
    expect(existsSync(join(dir, 'out'))).toBe(false);
  });

  it('exits 2 on bad arguments or a missing recipe', async () => {
    expect((await cli('build', '--device', 'tpu')).code).toBe(2);
    expect((await cli('build', '--frobnicate')).code).toBe(2);
    const r = await cli('build', join(tmp, 'nope.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/nope\.yaml: cannot read recipe/);
  });

  it('parses its options', () => {
    expect(parseBuildArgs([])).toMatchObject({ recipe: 'compress.yaml', out: 'dist/onnx', cache: true, json: false });
    expect(parseBuildArgs(['r.yaml', '--out=o', '--no-cache', '--device', 'gpu', '-j', '2'])).toMatchObject({
      recipe: 'r.yaml',
      out: 'o',
      cache: false,
      device: 'gpu',
      concurrency: 2,
    });
  });

  it('runs as a process: exit code and JSON on stdout', () => {
    const dir = project(RECIPE);
    const tsx = pathToFileURL(resolve('node_modules/tsx/dist/loader.mjs')).href; // cwd is outside the project
    const p = spawnSync(process.execPath, ['--import', tsx, resolve('src/cli.ts'), 'build', '--json', '--out', 'o', '--cache-dir', 'c'], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, CI: '1' },
    });
    expect(p.status, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout).map((r: { id: string }) => r.id)).toEqual(['fmnist', 'copy']);
    expect(existsSync(join(dir, 'o', 'fmnist.onnx'))).toBe(true);
  });
});

describe('validate', () => {
  it('prints the counts and exits 0', async () => {
    const dir = project(`models:\n  a:\n    source: fmnist.onnx\n    variants:\n      q8: { quantize: { dtype: int8 } }\n      f16: { quantize: { dtype: float16 } }\n  b:\n    source: fmnist.onnx\n`);
    const r = await cli('validate', join(dir, 'compress.yaml'));
    expect(r).toMatchObject({ code: 0, out: 'ok: 2 models, 4 builds\n' });
  });

  it('exits 2 with file:line:col for each problem', async () => {
    const bad = project(`models:\n  a:\n    source: fmnist.onnx\n    quantize: { dtype: int8, granularity: per-row }\n  b:\n    source: fmnist.onnx\n    emit: sometimes\n`);
    const r = await cli('validate', join(bad, 'compress.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/compress\.yaml:4:\d+: models\.a\.quantize\.granularity: expected one of/);
    expect(r.err).toMatch(/compress\.yaml:7:\d+: models\.b\.emit: expected one of/);
    const missing = project(`models:\n  a:\n    source: missing.onnx\n`);
    const m = await cli('validate', join(missing, 'compress.yaml'));
    expect(m.code).toBe(2);
    expect(m.err).toMatch(/compress\.yaml:3:13: .*file not found/);
  });

  it('exits 2 when a source is not an ONNX model, or its data does not fit its inputs', async () => {
    const notOnnx = project(`models:\n  a:\n    source: weights.onnx\n`);
    const cases: [string, Uint8Array | string, RegExp][] = [
      ['empty', new Uint8Array(0), /weights\.onnx: not an ONNX model: the file is empty/],
      ['zip', Buffer.from('PK\x03\x04rest of a zip', 'latin1'), /weights\.onnx \(byte 0\): not an ONNX model: it is a zip archive/],
      ['html', '<!doctype html><title>404</title>', /weights\.onnx \(byte 0\): not an ONNX model: it is HTML or XML text/],
      ['lfs', 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\n', /not an ONNX model: it is a Git LFS pointer/],
      ['text', 'hello, model', /weights\.onnx \(byte 0\): not an ONNX model: it does not start like one \(first byte 0x68\)/],
      ['no graph', Buffer.from([0x08, 0x07]), /weights\.onnx: not an ONNX model: it decodes as protobuf but has no graph/],
    ];
    for (const [label, bytes, message] of cases) {
      writeFileSync(join(notOnnx, 'weights.onnx'), bytes);
      const r = await cli('validate', join(notOnnx, 'compress.yaml'));
      expect(r.code, label).toBe(2);
      expect(r.err, label).toMatch(message);
      const i = await cli('inspect', join(notOnnx, 'weights.onnx'));
      expect(i.code, `inspect ${label}`).toBe(2);
      expect(i.err, `inspect ${label}`).toMatch(message);
    }
    // Data whose input name is not the model's: named with the line, before any compression.
    const data = project(`models:\n  a:\n    source: fmnist.onnx\n    evaluate: { data: eval.jsonl }\n`);
    writeFileSync(join(data, 'eval.jsonl'), JSON.stringify({ inputs: { pixels: [[0]] }, label: 1 }) + '\n');
    const d = await cli('validate', join(data, 'compress.yaml'));
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/eval\.jsonl:1: .*pixels/);
  });
});

describe('progress reporter', () => {
  const sink = (isTTY: boolean) => {
    const chunks: string[] = [];
    const stream = { isTTY, columns: 80, write: (s: string) => (chunks.push(s), true) } as unknown as NodeJS.WriteStream;
    return { stream, text: () => chunks.join('') };
  };

  const ev = (e: Record<string, unknown>) => ({ elapsedMs: 10, ...e }) as PipelineEvent;
  const coldBuild = [
    ev({ kind: 'model-start', model: 'spam' }),
    ev({ kind: 'step-start', model: 'spam', step: 'quantize' }),
    ev({ kind: 'step-progress', model: 'spam', step: 'quantize', fraction: 0.5 }),
    ev({ kind: 'step-log', model: 'spam', step: 'quantize', message: 'gptq: collecting 2 Hessians' }),
    ev({ kind: 'step-done', model: 'spam', step: 'quantize', ms: 420 }),
    ev({ kind: 'warning', model: 'spam', step: 'quantize', message: 'quantize: careful' }),
    ev({ kind: 'model-done', model: 'spam', cached: false, bytesBefore: 1_300_000, bytesAfter: 382_300, key: 'k', elapsedMs: 1600 }),
  ];

  it('prints one line per model and its warnings when not live; --verbose adds steps; --quiet only warnings', () => {
    const s = sink(false);
    const r = createReporter({ stream: s.stream });
    coldBuild.forEach(r.onEvent);
    r.onEvent(ev({ kind: 'model-done', model: 'copy', cached: true, bytesBefore: 1000, bytesAfter: 1000, key: 'k', elapsedMs: 50 }));
    r.close();
    expect(s.text()).toBe('warning: spam: quantize: careful\nspam: done in 1.6 s, 1.3 MB → 382.3 kB (0.29×)\ncopy: cached in 0.05 s, 1.0 kB → 1.0 kB (1.00×)\n');
    const v = sink(false);
    coldBuild.forEach(createReporter({ stream: v.stream, verbose: true }).onEvent);
    expect(v.text()).toBe(
      'spam: quantize: gptq: collecting 2 Hessians\nspam: quantize done in 0.42 s\nwarning: spam: quantize: careful\nspam: done in 1.6 s, 1.3 MB → 382.3 kB (0.29×)\n',
    );
    const q = sink(false);
    coldBuild.forEach(createReporter({ stream: q.stream, quiet: true }).onEvent);
    expect(q.text()).toBe('warning: spam: quantize: careful\n');
  });

  it('redraws one line per model in flight on a terminal, keeping finished lines above', async () => {
    const s = sink(true);
    const r = createReporter({ stream: s.stream, live: true });
    r.onEvent(ev({ kind: 'step-progress', model: 'spam', step: 'quantize', fraction: 0.25, elapsedMs: 1500 }));
    r.onEvent(ev({ kind: 'step-start', model: 'fmnist.q8', step: 'read' }));
    await new Promise((x) => setTimeout(x, 150));
    expect(s.text()).toMatch(/^ {2}spam {7}quantize {3}25% {2}1\.\d s\n {2}fmnist\.q8 {2}read/);
    r.onEvent(ev({ kind: 'step-done', model: 'spam', step: 'quantize', ms: 420 })); // shown by the live line instead
    r.onEvent(ev({ kind: 'model-done', model: 'spam', cached: false, bytesBefore: 1_300_000, bytesAfter: 400_000, key: 'k', elapsedMs: 2000 }));
    r.close();
    const text = s.text();
    expect(text).not.toMatch(/quantize done/);
    expect(text).toMatch(/\x1b\[2A\x1b\[0Jspam: done in 2\.0 s, 1\.3 MB → 400\.0 kB/);
    expect(text.endsWith('\x1b[1A\x1b[0J')).toBe(true); // close() clears the live lines
  });
});
