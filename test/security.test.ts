/**
 * Hostile and broken input (issue 18): containment of paths (symlinks, FIFOs), no silent loss of files,
 * bounded work on hostile recipes and data, typed errors with exit 2 instead of crashes. Everything
 * runs through `main` (src/cli.ts) with the output captured, and asserts exit codes, messages and the
 * files left on disk.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitFiles } from '../src/pipeline/commit.js';
import { decodeModel, encodeModelToBytes } from '../src/onnx/codec.js';
import { loadSamples, readZip } from '../src/data/index.js';
import { inputSpecs } from '../src/runtime/session.js';
import { resolveOptions } from '../src/plugin/options.js';
import { modelMiddleware } from '../src/plugin/dev.js';
import { sweepStaleTemps } from '../src/pipeline/temps.js';
import { cli } from './cli-run.js';
import { zip } from './zip-writer.js';

const FMNIST = resolve('test/fixtures/fmnist-cnn/model.onnx');

let tmp: string;
let n = 0;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'security-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function project(recipe: string, files: Record<string, string> = {}): string {
  const dir = join(tmp, `p${n++}`);
  mkdirSync(dir);
  copyFileSync(FMNIST, join(dir, 'fmnist.onnx'));
  writeFileSync(join(dir, 'compress.yaml'), recipe);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}


const SECRET = 'TOP-SECRET-TOKEN-0123456789';

/** A copy of fmnist with its weights in `<dir>/weights.bin` (tensors ≥ 1 KB), written by repack. */
async function externalModel(dir: string, dataName = 'weights.bin'): Promise<{ model: string; data: string }> {
  mkdirSync(dir, { recursive: true });
  const model = join(dir, 'm.onnx');
  const r = await cli('repack', FMNIST, model, `--external-data=${dataName}`);
  expect(r.code, r.err).toBe(0);
  return { model, data: join(dir, dataName) };
}

/** A file as long as `size` that holds the secret (so offset/length checks pass and only containment can refuse it). */
function secretFile(file: string, size: number): void {
  const buf = Buffer.alloc(size, 0x20);
  buf.write(SECRET, 0);
  writeFileSync(file, buf);
}

const containsSecret = (file: string) => existsSync(file) && readFileSync(file).includes(SECRET);

describe('containment: external data through symlinks', () => {
  it('a weights file that is a symlink to a file outside the model folder is refused by build, repack --inline and inspect', async () => {
    const dir = join(tmp, `ext${n++}`);
    const { model, data } = await externalModel(join(dir, 'project'));
    const size = readFileSync(data).length;
    secretFile(join(dir, 'secret.txt'), size);
    rmSync(data);
    symlinkSync(join(dir, 'secret.txt'), data);
    writeFileSync(join(dir, 'project', 'compress.yaml'), 'defaults:\n  device: cpu\nmodels:\n  m:\n    source: m.onnx\n');

    const out = join(dir, 'project', 'dist');
    const b = await cli('build', join(dir, 'project', 'compress.yaml'), '--out', out, '--no-cache', '--quiet');
    expect(b.code, b.err).toBe(2);
    expect(b.err).toMatch(/external data location "weights\.bin" resolves to .*secret\.txt, outside .*project/);
    expect(containsSecret(join(out, 'm.onnx'))).toBe(false);
    expect(existsSync(join(out, 'm.onnx'))).toBe(false);

    const inlined = join(dir, 'inline.onnx');
    const r = await cli('repack', model, inlined, '--inline');
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/outside/);
    expect(existsSync(inlined)).toBe(false);

    const i = await cli('inspect', model);
    expect(i.code, i.err).toBe(2);
    expect(i.err).toMatch(/outside/);
    expect(i.out).not.toContain(String(size));
  });

  it('a location inside a symlinked folder that leads outside is refused; a symlink that stays inside is fine', async () => {
    const dir = join(tmp, `ext${n++}`);
    // Written as "sub_w.bin", then renamed in the file to "sub/w.bin" (same length: no protobuf lengths change).
    const { model, data } = await externalModel(join(dir, 'project'), 'sub_w.bin');
    const size = readFileSync(data).length;
    // The model points to sub/w.bin; sub is a symlink to a folder outside the project.
    mkdirSync(join(dir, 'outside'));
    secretFile(join(dir, 'outside', 'w.bin'), size);
    symlinkSync(join(dir, 'outside'), join(dir, 'project', 'sub'));
    const text = readFileSync(model);
    const patched = Buffer.from(text.toString('latin1').replaceAll('sub_w.bin', 'sub/w.bin'), 'latin1');
    expect(patched.equals(text)).toBe(false); // the location string was found and rewritten
    const model2 = join(dir, 'project', 'm2.onnx');
    writeFileSync(model2, patched);
    const r = await cli('repack', model2, join(dir, 'x.onnx'), '--inline');
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/external data location "sub\/w\.bin" resolves to .*outside.*, outside /);

    // Inside the folder, a symlink is followed.
    mkdirSync(join(dir, 'project', 'real'));
    rmSync(join(dir, 'project', 'sub'));
    copyFileSync(data, join(dir, 'project', 'real', 'w.bin'));
    symlinkSync(join(dir, 'project', 'real'), join(dir, 'project', 'sub'));
    const ok = await cli('repack', model2, join(dir, 'y.onnx'), '--inline');
    expect(ok.code, ok.err).toBe(0);
    expect(Buffer.compare(readFileSync(join(dir, 'y.onnx')), readFileSync(FMNIST))).toBe(0);
  });

  it('a folder the recipe allows (externalDataDirs) and a blob store the model itself lives in are followed', async () => {
    const dir = join(tmp, `allow${n++}`);
    const { data } = await externalModel(join(dir, 'project'));
    mkdirSync(join(dir, 'shared'));
    copyFileSync(data, join(dir, 'shared', 'weights.bin'));
    rmSync(data);
    symlinkSync(join(dir, 'shared', 'weights.bin'), data);
    const recipe = (extra: string) => `defaults:\n  device: cpu\nmodels:\n  m:\n    source: m.onnx\n${extra}`;
    const file = join(dir, 'project', 'compress.yaml');
    writeFileSync(file, recipe(''));
    const refused = await cli('build', file, '--out', join(dir, 'out1'), '--no-cache', '--quiet');
    expect(refused.code, refused.err).toBe(2);
    expect(refused.err).toMatch(/resolves to .*shared\/weights\.bin, outside/);
    writeFileSync(file, recipe('    externalDataDirs: [../shared]\n'));
    const allowed = await cli('build', file, '--out', join(dir, 'out2'), '--no-cache', '--quiet');
    expect(allowed.code, allowed.err).toBe(0);
    expect(existsSync(join(dir, 'out2', 'm.onnx'))).toBe(true);

    // Hugging Face cache layout: snapshot files are symlinks into a blobs folder, model and data alike.
    const hf = join(dir, 'hf');
    mkdirSync(join(hf, 'blobs'), { recursive: true });
    mkdirSync(join(hf, 'snapshot'));
    const { model: m2, data: d2 } = await externalModel(join(dir, 'tmpmodel'));
    copyFileSync(m2, join(hf, 'blobs', 'aaa'));
    copyFileSync(d2, join(hf, 'blobs', 'bbb'));
    symlinkSync('../blobs/aaa', join(hf, 'snapshot', 'm.onnx'));
    symlinkSync('../blobs/bbb', join(hf, 'snapshot', 'weights.bin'));
    const r = await cli('repack', join(hf, 'snapshot', 'm.onnx'), join(dir, 'hf.onnx'), '--inline');
    expect(r.code, r.err).toBe(0);
    expect(Buffer.compare(readFileSync(join(dir, 'hf.onnx')), readFileSync(FMNIST))).toBe(0);
  });

  it('a FIFO as model or as external data is a typed error, not a hang', async () => {
    const dir = join(tmp, `fifo${n++}`);
    mkdirSync(dir);
    const fifo = join(dir, 'pipe.onnx');
    execFileSync('mkfifo', [fifo]);
    const t0 = Date.now();
    const i = await cli('inspect', fifo);
    expect(i.code).toBe(2);
    expect(i.err).toMatch(/pipe\.onnx: the file is not a regular file \(found a FIFO\)/);
    const { model, data } = await externalModel(join(dir, 'ext'));
    rmSync(data);
    execFileSync('mkfifo', [data]);
    const r = await cli('repack', model, join(dir, 'x.onnx'), '--inline');
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/is not a regular file \(found a FIFO\)/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('a symlink loop or a folder as a recipe source is a recipe error at the key, not an internal error', async () => {
    const dir = project(`models:\n  a:\n    source: loop.onnx\n  b:\n    source: folder.onnx\n`);
    symlinkSync(join(dir, 'loop.onnx'), join(dir, 'loop.onnx'));
    mkdirSync(join(dir, 'folder.onnx'));
    const r = await cli('validate', join(dir, 'compress.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/compress\.yaml:3:13: models\.a\.source: cannot open .*loop\.onnx: a symlink loop/);
    expect(r.err).toMatch(/compress\.yaml:5:13: models\.b\.source: expected an \.onnx file, found a folder/);
    expect(r.err).not.toMatch(/internal error/);
  });

  it('a folder and a symlink loop as model are typed errors with exit 2', async () => {
    const dir = join(tmp, `odd${n++}`);
    mkdirSync(join(dir, 'folder.onnx'), { recursive: true });
    symlinkSync(join(dir, 'loop.onnx'), join(dir, 'loop.onnx'));
    const a = await cli('inspect', join(dir, 'folder.onnx'));
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/folder\.onnx: the file is not a regular file \(found a folder\)/);
    const b = await cli('inspect', join(dir, 'loop.onnx'));
    expect(b.code).toBe(2);
    expect(b.err).toMatch(/loop\.onnx: cannot open: ELOOP/);
    expect(a.err + b.err).not.toMatch(/internal error|\n\s+at /);
  });
});

const sha = (f: string) => readFileSync(f).toString('base64');
const PLAIN = (extra = '') => `defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n${extra}`;

describe('no silent loss: outputs never overwrite inputs or each other', () => {
  it('output: fmnist.onnx with --out . is refused at the output key; the source is untouched', async () => {
    const dir = project(PLAIN('    output: fmnist.onnx\n'));
    const before = sha(join(dir, 'fmnist.onnx'));
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', dir, '--no-cache', '--quiet');
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/compress\.yaml:6:5: fmnist: the output .*fmnist\.onnx would overwrite the source of fmnist; choose another output name or --out/);
    expect(sha(join(dir, 'fmnist.onnx'))).toBe(before);
    // The default output name collides the same way; the error then points at the model.
    const dir2 = project(PLAIN());
    const r2 = await cli('build', join(dir2, 'compress.yaml'), '--out', dir2, '--no-cache', '--quiet');
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/compress\.yaml:4:3: fmnist: the output .* would overwrite the source of fmnist/);
  });

  it('an output inside a data folder, or over the recipe, is refused', async () => {
    const dir = project(PLAIN('    output: compress.yaml\n'));
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', dir, '--no-cache', '--quiet');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/would overwrite the recipe/);
    const dir2 = project(PLAIN('    evaluate: { data: calib }\n'));
    mkdirSync(join(dir2, 'calib'));
    const r2 = await cli('build', join(dir2, 'compress.yaml'), '--out', join(dir2, 'calib'), '--no-cache', '--quiet');
    expect(r2.code).toBe(2);
    expect(r2.err).toMatch(/would overwrite calib, which fmnist reads \(inside .*calib\)/);
  });

  it("a model output named like another build's manifest is a recipe error with line:col", async () => {
    const dir = project(`models:\n  a:\n    source: fmnist.onnx\n    output: b.manifest.json\n  b:\n    source: fmnist.onnx\n`);
    const r = await cli('validate', join(dir, 'compress.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/compress\.yaml:4:13: models\.a\.output: output "b\.manifest\.json" is the manifest file of models\.b/);
  });

  it('NUL and over-long output names are recipe errors, not internal errors', async () => {
    const dir = project(`models:\n  a:\n    source: fmnist.onnx\n    output: "a\\0b.onnx"\n  b:\n    source: fmnist.onnx\n    output: ${'x'.repeat(300)}.onnx\n`);
    const r = await cli('validate', join(dir, 'compress.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/compress\.yaml:4:13: models\.a\.output: output contains the control character U\+0000/);
    expect(r.err).toMatch(/compress\.yaml:7:13: models\.b\.output: output is too long/);
    expect(r.err).not.toMatch(/internal error/);
  });

  it("repack never writes its model over the input's data file, nor its data file over the input model", async () => {
    const dir = join(tmp, `repack${n++}`);
    const { model, data } = await externalModel(dir);
    const before = [sha(model), sha(data)];
    const a = await cli('repack', model, data, '--inline');
    expect(a.code, a.err).toBe(2);
    expect(a.err).toMatch(/the output .*weights\.bin is the external data file of the input/);
    const b = await cli('repack', model, join(dir, 'other.onnx'), '--external-data=m.onnx');
    expect(b.code, b.err).toBe(2);
    expect(b.err).toMatch(/the output's data file .*m\.onnx is one of the input's files/);
    expect([sha(model), sha(data)]).toEqual(before);
    // In place (same model, same data file) is allowed: everything is read before anything is written.
    const c = await cli('repack', model, model, '--external-data=weights.bin');
    expect(c.code, c.err).toBe(0);
    expect(await cli('repack', model, join(dir, 'back.onnx'), '--inline')).toMatchObject({ code: 0 });
    expect(Buffer.compare(readFileSync(join(dir, 'back.onnx')), readFileSync(FMNIST))).toBe(0);
  });

  it('model and manifest are committed together: a failing second rename rolls the first back', () => {
    const dir = join(tmp, `commit${n++}`);
    mkdirSync(dir);
    const tmpDir = join(dir, '.tmp');
    writeFileSync(join(dir, 'm.onnx'), 'old model');
    // The manifest's target is a non-empty folder: its rename fails after the model's succeeded.
    mkdirSync(join(dir, 'm.manifest.json'));
    writeFileSync(join(dir, 'm.manifest.json', 'x'), '');
    expect(() =>
      commitFiles(
        [
          { file: join(dir, 'm.onnx'), bytes: Buffer.from('new model') },
          { file: join(dir, 'm.manifest.json'), bytes: Buffer.from('{}') },
        ],
        tmpDir,
      ),
    ).toThrow(/m\.manifest\.json: cannot write/);
    expect(readFileSync(join(dir, 'm.onnx'), 'utf8')).toBe('old model');
    expect(readdirSync(tmpDir)).toEqual([]);
    expect(readdirSync(dir).sort()).toEqual(['.tmp', 'm.manifest.json', 'm.onnx']);
  });

  it('a build writes no temp file into the output folder, and stale temps of killed writers are swept', async () => {
    const dir = project(PLAIN());
    const out = join(dir, 'dist');
    mkdirSync(out);
    const cache = join(dir, 'cache');
    mkdirSync(cache);
    // Leftovers of a dead writer (pid 2^22 + 1 cannot exist on Linux) and a live one (this process).
    const dead = 4194305;
    writeFileSync(join(out, `.fmnist.onnx.${dead}.abc123.tmp`), 'x'.repeat(100));
    writeFileSync(join(cache, `.k.onnx.${dead}.zz9.tmp`), 'x');
    writeFileSync(join(out, `.live.onnx.${process.pid}.q1.tmp`), 'x');
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', out, '--cache-dir', cache, '--quiet');
    expect(r.code, r.err).toBe(0);
    const files = readdirSync(out).sort();
    expect(files).toContain('fmnist.onnx');
    expect(files).toContain('fmnist.manifest.json');
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([`.live.onnx.${process.pid}.q1.tmp`]);
    expect(readdirSync(cache).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(readdirSync(join(cache, 'tmp'))).toEqual([]);
    // Age alone also makes a temp stale.
    expect(sweepStaleTemps(out, Date.now() + 2 * 24 * 3600 * 1000)).toBe(1);
  });
});

describe("a user's JS data module: its errors are its own, exit 2", () => {
  const cases: [string, string, RegExp][] = [
    ['throw null', 'export default function () { throw null; }', /data\.mjs: the module's sample function threw: null/],
    ['a throwing getter', 'export default [{ get inputs() { throw new Error("boom"); } }];', /data\.mjs: sample 1: reading the sample threw: boom/],
    ['an iterator that throws', 'export default { [Symbol.iterator]() { let i = 0; return { next() { if (i++ === 1) throw "iter broke"; return { value: { inputs: { image: new Float32Array(784) } }, done: false }; } }; } };', /data\.mjs: sample 2: the module's iterator threw: iter broke/],
    ['an import that throws an object', 'throw { message: "top-level" };', /data\.mjs: cannot import the data module: top-level/],
    ['an infinite generator without samples', 'export default function* () { for (;;) yield { inputs: { image: new Float32Array(784) } }; }', /data\.mjs: the data module yields more than 50 samples: set samples to take fewer \(limit 50; set ONNX_COMPRESS_LIMIT_SAMPLES/],
  ];
  for (const [name, code, message] of cases) {
    it(name, async () => {
      const dir = project(PLAIN('    evaluate: { data: data.mjs }\n'), { 'data.mjs': code });
      process.env.ONNX_COMPRESS_LIMIT_SAMPLES = '50';
      try {
        const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'dist'), '--no-cache', '--quiet');
        expect(r.code, r.err).toBe(2);
        expect(r.err).toMatch(message);
        expect(r.err).not.toMatch(/internal error|\n\s+at /);
      } finally {
        delete process.env.ONNX_COMPRESS_LIMIT_SAMPLES;
      }
    });
  }

  it('a module that exits the process or never settles: the real command never exits 0', () => {
    const run = (code: string) => {
      const dir = project(PLAIN('    evaluate: { data: data.mjs }\n'), { 'data.mjs': code });
      return spawnSync(process.execPath, ['--import', pathToFileURL(resolve('node_modules/tsx/dist/loader.mjs')).href, resolve('src/cli.ts'), 'build', '--out', 'dist', '--no-cache', '--quiet'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    };
    const exited = run('process.exit(0);');
    expect(exited.status, exited.stderr).toBe(2);
    expect(exited.stderr).toMatch(/the command ended before it finished .*models not written: fmnist/);
    const hung = run('export default function () { return new Promise(() => {}); }');
    expect(hung.status, hung.stderr).toBe(2);
    expect(hung.stderr).toMatch(/the command ended before it finished/);
    const rejected = run('Promise.reject(new Error("stray")); export default [];');
    expect(rejected.status, rejected.stderr).toBe(2);
    expect(rejected.stderr).toMatch(/data\.mjs: a promise was rejected and nothing handled it: stray/);
  });
});

/** fmnist with its input's dims (or any other edit) changed, written into a new project as fmnist.onnx. */
function editedProject(recipe: string, edit: (m: ReturnType<typeof decodeModel>) => void): string {
  const dir = project(recipe);
  const m = decodeModel(readFileSync(FMNIST), FMNIST);
  edit(m);
  writeFileSync(join(dir, 'fmnist.onnx'), encodeModelToBytes(m));
  return dir;
}

const inputDims = (m: ReturnType<typeof decodeModel>) => m.graph!.input[0].type!.tensorType!.shape!.dim;

describe('bounded work', () => {
  const validate = async (recipe: string, env: Record<string, string> = {}) => {
    const dir = project(recipe);
    Object.assign(process.env, env);
    const t0 = performance.now();
    try {
      const r = await cli('validate', join(dir, 'compress.yaml'));
      return { ...r, ms: performance.now() - t0 };
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
    }
  };

  it('a billion-laughs recipe stops at the alias limit instead of hanging', async () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    const r = await validate(`${lines.join('\n')}\nmodels:\n  m:\n    source: fmnist.onnx\n    output: *a9\n`);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/compress\.yaml:1:1: invalid YAML: .*alias.*ONNX_COMPRESS_LIMIT_RECIPE_ALIASES/);
    expect(r.ms).toBeLessThan(10_000); // a guard against the hang (>30 s before the fix), not a timing target: those are in bench/
  });

  it('deep nesting, huge mappings, oversized recipes and too many builds are refused before parsing', async () => {
    const deep = await validate(`models: ${'['.repeat(20000)}${']'.repeat(20000)}\n`);
    expect(deep.code).toBe(2);
    expect(deep.err).toMatch(/compress\.yaml:1:\d+: the recipe nests deeper than 64 levels/);
    const block = await validate(`models:\n${Array.from({ length: 100 }, (_, i) => '  '.repeat(i + 1) + `k${i}:`).join('\n')}\n`);
    expect(block.err).toMatch(/compress\.yaml:65:\d+: the recipe nests deeper than 64 levels/);
    const keys = await validate(`models:\n  m:\n    source: fmnist.onnx\n${Array.from({ length: 5000 }, (_, i) => `    k${i}: 1`).join('\n')}\n`);
    expect(keys.err).toMatch(/compress\.yaml:1003:5: a mapping or list of the recipe has more than 1000 entries/);
    expect(keys.ms).toBeLessThan(10_000); // was 90 s before the limit
    const big = await validate(`# ${'x'.repeat(1 << 20)}\nmodels: {}\n`);
    expect(big.err).toMatch(/compress\.yaml:1:1: the recipe is \d+ bytes, over the limit of 262144/);
    const many = await validate(`models:\n  a: { source: fmnist.onnx }\n  b: { source: fmnist.onnx }\n  c: { source: fmnist.onnx, variants: { v: {} } }\n`, { ONNX_COMPRESS_LIMIT_BUILDS: '3' });
    expect(many.code).toBe(2);
    expect(many.err).toMatch(/compress\.yaml:1:1: models: the recipe has 4 builds \(models and variants\), over the limit of 3/);
  });

  it('many unknown keys: the first 100 are listed, the rest counted', async () => {
    const r = await validate(`models:\n  m:\n    source: fmnist.onnx\n${Array.from({ length: 900 }, (_, i) => `    k${i}: 1`).join('\n')}\n`);
    expect(r.code).toBe(2);
    expect(r.err.split('\n').filter((l) => l.includes('unknown key')).length).toBe(100);
    expect(r.err).toMatch(/… and 800 more problems not listed/);
  });

  it('samples, runs and distill steps over their limits are recipe errors at the key', async () => {
    const r = await validate(
      `models:\n  m:\n    source: fmnist.onnx\n    calibration: { data: random, samples: 1000000000 }\n    evaluate: { data: random, runs: 1000000000 }\n`,
    );
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/compress\.yaml:4:\d+: models\.m\.calibration\.samples: 1000000000 is over the limit of 100000 \(set ONNX_COMPRESS_LIMIT_SAMPLES/);
    expect(r.err).toMatch(/compress\.yaml:5:\d+: models\.m\.evaluate\.runs: 1000000000 is over the limit of 10000/);
  });

  it('a declared input of [1, 2147483648] fails before allocation, naming the input (typed, exit 2)', async () => {
    const dir = editedProject(PLAIN(), (m) => {
      inputDims(m)[1] = { dimValue: 2147483648n };
    });
    const t0 = performance.now();
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'dist'), '--no-cache', '--quiet');
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/fmnist\.onnx: the verification input .*: input "image" of shape \[1, 2147483648, 28, 28\] \(float32\) needs 6\.1 TiB, over the 256\.0 MiB budget/);
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  it('negative and overflowing dims in random data are typed errors naming the input', async () => {
    const m = decodeModel(readFileSync(FMNIST), FMNIST);
    inputDims(m)[2] = { dimValue: -5n };
    await expect(loadSamples({ data: 'random', samples: 1 }, inputSpecs(m))).rejects.toThrow(/input "image" declares an invalid dim -5/);
    inputDims(m)[2] = { dimValue: 2n ** 40n };
    inputDims(m)[3] = { dimValue: 2n ** 40n };
    await expect(loadSamples({ data: 'random', samples: 1 }, inputSpecs(m))).rejects.toThrow(/input "image" declares shape .* whose element count overflows/);
  });
});

/** A one-entry zip whose stored body is `compressed` as given, declaring `size` uncompressed bytes. */
const zipWith = (name: string, compressed: Buffer, size: number, method = 8): Buffer =>
  Buffer.from(zip([{ name, data: new Uint8Array(0), body: compressed, declared: size, method }]));

describe('typed errors for malformed data and models', () => {
  it('npz: a zip bomb, an entry that lies about its size, and truncated archives are data errors with a byte offset', async () => {
    const { deflateRawSync } = await import('node:zlib');
    const zeros = deflateRawSync(Buffer.alloc(64 << 20));
    expect(() => readZip(zipWith('image.npy', zeros, 64 << 20), 'bomb.npz').get('image.npy')!()).toThrow(
      /bomb\.npz \(byte \d+\): zip entry "image\.npy" declares 67108864 bytes from \d+ compressed \(ratio \d+\).*ONNX_COMPRESS_LIMIT_NPZ_RATIO/,
    );
    expect(() => readZip(zipWith('image.npy', zeros, 4 << 30 >>> 0 || 0xfffffffe), 'big.npz').get('image.npy')!()).toThrow(/declares \d+ bytes .*NPZ_ENTRY_BYTES/);
    const small = deflateRawSync(Buffer.alloc(4096, 1));
    expect(() => readZip(zipWith('image.npy', small, 100), 'liar.npz').get('image.npy')!()).toThrow(/liar\.npz \(byte \d+\): zip entry "image\.npy" inflates to more than the 100 bytes it declares/);
    const good = zipWith('image.npy', small, 4096);
    for (const cut of [good.length - 5, 40, 10]) {
      expect(() => {
        const z = readZip(good.subarray(0, cut), 'cut.npz');
        for (const read of z.values()) read();
      }).toThrow(/cut\.npz( \(byte \d+\))?: (truncated or malformed zip|not a zip archive|bad zip)/);
    }
    const corrupt = zipWith('image.npy', Buffer.from('not deflate data at all'), 4096);
    expect(() => readZip(corrupt, 'bad.npz').get('image.npy')!()).toThrow(/bad\.npz \(byte \d+\): zip entry "image\.npy" cannot be inflated/);
  });

  it('JSONL nested 10,000 deep (valid or not) is a data error with the line', async () => {
    const dir = join(tmp, `jsonl${n++}`);
    mkdirSync(dir);
    const specs = inputSpecs(decodeModel(readFileSync(FMNIST), FMNIST));
    const deep = `{"inputs": {"image": ${'['.repeat(10000)}1${']'.repeat(10000)}}}`;
    writeFileSync(join(dir, 'a.jsonl'), deep + '\n');
    await expect(loadSamples({ data: join(dir, 'a.jsonl'), samples: 1 }, specs)).rejects.toThrow(/a\.jsonl:1: sample 1: input "image" nests arrays 10000 deep, over the limit of 64/);
    writeFileSync(join(dir, 'b.jsonl'), deep.slice(0, -1) + '\n');
    await expect(loadSamples({ data: join(dir, 'b.jsonl'), samples: 1 }, specs)).rejects.toThrow(/b\.jsonl:1:\d+: sample 1: invalid JSON/);
  });

  it('a source onnxruntime cannot load is exit 2 naming the source; an empty .onnx is refused up front', async () => {
    const dir = editedProject(PLAIN(), (m) => {
      m.graph!.node[0].opType = 'NoSuchOp';
    });
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'dist'), '--no-cache', '--quiet');
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/fmnist: .*fmnist\.onnx: fmnist: the source model does not load in onnxruntime: .*NoSuchOp/);
    expect(r.err).not.toMatch(/compressed model/);

    const empty = project(PLAIN());
    writeFileSync(join(empty, 'fmnist.onnx'), '');
    const e = await cli('build', join(empty, 'compress.yaml'), '--out', join(empty, 'dist'), '--no-cache', '--quiet');
    expect(e.code).toBe(2);
    expect(e.err).toMatch(/fmnist\.onnx: not an ONNX model: the file is empty/);
    expect(existsSync(join(empty, 'dist', 'fmnist.onnx'))).toBe(false);
  });
});

describe('dev middleware and plugin options', () => {
  it('a malformed % escape goes to the next handler (Vite answers 404), never a 500 with a stack', async () => {
    const models = { builds: async () => [], options: { modelsDir: 'models' } } as never;
    const server = { config: { base: '/' } } as never;
    const mw = modelMiddleware(models, server);
    for (const url of ['/%E0%A4%A', '/%', '/@onnx-compress/%ZZ.onnx', '//[']) {
      const nextArgs = await new Promise<unknown[]>((done) => mw({ method: 'GET', url } as never, {} as never, (...a: unknown[]) => done(a)));
      expect(nextArgs, url).toEqual([]);
    }
  });

  it('modelsDir must stay inside the output directory', () => {
    expect(resolveOptions({ modelsDir: '/models/' }).modelsDir).toBe('models');
    expect(resolveOptions({ modelsDir: 'assets/models' }).modelsDir).toBe('assets/models');
    for (const bad of ['../models', 'a/../../b', 'C:/x', 'a\\b', 'a//b', 'a\u0000b']) {
      expect(() => resolveOptions({ modelsDir: bad }), bad).toThrow(/modelsDir option must name a folder inside the output directory/);
    }
  });
});

describe('isolation: onnxruntime runs user models in a child process first', () => {
  const sample = async () => {
    const { syntheticSample } = await import('../src/pipeline/verify.js');
    const m = decodeModel(readFileSync(FMNIST), FMNIST);
    return (await syntheticSample(inputSpecs(m), 1)).feeds;
  };

  it('a model that runs is ok; one onnxruntime refuses is a plain failure; the child is reused', async () => {
    const { probeIsolated, isolatedPids } = await import('../src/runtime/isolate.js');
    const feeds = await sample();
    expect(await probeIsolated(readFileSync(FMNIST), feeds, { phase: 'test' })).toEqual({ ok: true });
    const [pid] = isolatedPids();
    const bad = decodeModel(readFileSync(FMNIST), FMNIST);
    bad.graph!.node[0].opType = 'NoSuchOp';
    const r = await probeIsolated(encodeModelToBytes(bad), feeds, { phase: 'test' });
    expect(r).toMatchObject({ ok: false, stage: 'load' });
    expect((r as { message: string }).message).toMatch(/NoSuchOp/);
    expect(isolatedPids()).toEqual([pid]);
  });

  it('a native crash, a hang and a memory blow-up become CompressErrors for that model, and the pool recovers', async () => {
    const { probeIsolated, runningIsolatedPid, isolatedPids } = await import('../src/runtime/isolate.js');
    const feeds = await sample();
    const model = readFileSync(FMNIST);
    // A crash: the child is killed by SIGABRT (what "terminate called without an active exception" does) mid-probe.
    const crashing = probeIsolated(model, feeds, { file: 'm.onnx', phase: 'verify' });
    const pid = runningIsolatedPid()!;
    process.kill(pid, 'SIGABRT');
    await expect(crashing).rejects.toThrow(/^m\.onnx: onnxruntime crashed on the model \(during verify\): the process was killed by SIGABRT$/);
    expect(isolatedPids()).not.toContain(pid);
    await expect(probeIsolated(model, feeds, { file: 'm.onnx', phase: 'verify', timeoutMs: 1 })).rejects.toThrow(/m\.onnx: onnxruntime timed out after 0 s .*\(during verify\)/);
    await expect(probeIsolated(model, feeds, { file: 'm.onnx', phase: 'verify', memoryBytes: 1 })).rejects.toThrow(/m\.onnx: onnxruntime used more than 1 bytes of memory/);
    expect(await probeIsolated(model, feeds, { phase: 'verify' })).toEqual({ ok: true });
  });
});

describe('every error names a place', () => {
  it('a tensor whose raw data does not match its dims fails the build with the source file named', async () => {
    const dir = editedProject(PLAIN('    quantize: { dtype: int8 }\n'), (m) => {
      const w = m.graph!.initializer.reduce((a, b) => ((b.rawData?.length ?? 0) > (a.rawData?.length ?? 0) ? b : a));
      w.rawData = w.rawData!.subarray(0, w.rawData!.length - 4);
    });
    const r = await cli('build', join(dir, 'compress.yaml'), '--out', join(dir, 'dist'), '--no-cache', '--quiet');
    expect(r.code, r.err).toBe(2);
    expect(r.err).toMatch(/fmnist: .*fmnist\.onnx: .*bytes of raw data, expected \d+/);
    expect(r.err).not.toMatch(/internal error/);
  });
});

describe('whole-build fuzzing (a bounded slice of `npm run fuzz`)', () => {
  it('mutants of real models and bad recipes/data through the real command: no crash, hang, untyped or unlocated error', async () => {
    const { parse, runFuzz } = await import('../scripts/fuzz.js');
    const out = join(tmp, 'fuzz');
    const summary = runFuzz({ ...parse([]), cases: 8, seed: 11, timeoutMs: 60_000, out }, () => {});
    const findings = summary.outcomes.filter((o) => o.finding).map((o) => `${o.case} ${o.finding}: ${o.what} → ${o.message}`);
    expect(findings).toEqual([]);
    expect(summary.cases).toBe(8);
  }, 600_000);
});
