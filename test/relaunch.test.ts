/**
 * The command line's relaunch with huge pages (src/cli/relaunch.ts): when it relaunches, that the
 * relaunched process gets the tunable, and that exit codes, output and signals come through it as if
 * there were one process.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { modelBytes, recipeSources, RELAUNCH_MIN_BYTES, shouldRelaunch, type Machine } from '../src/cli/relaunch.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'relaunch-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const BIG = RELAUNCH_MIN_BYTES;

/** A machine that would relaunch for a big enough model: Linux, glibc 2.36, THP on request. */
function machine(files: Record<string, string | number>, over: Partial<Machine> = {}): Machine {
  const system: Record<string, string> = { '/sys/kernel/mm/transparent_hugepage/enabled': 'always [madvise] never\n' };
  return {
    platform: 'linux',
    env: {},
    execArgv: [],
    cwd: '/p',
    read: (f) => system[f] ?? (typeof files[f] === 'string' ? (files[f] as string) : undefined),
    size: (f) => (typeof files[f] === 'number' ? (files[f] as number) : typeof files[f] === 'string' ? (files[f] as string).length : undefined),
    glibc: () => '2.36',
    ...over,
  };
}

describe('which models a command reads', () => {
  it('finds the sources of a recipe in block and flow style, plain or quoted, and leaves globs out', () => {
    const text = [
      'models:',
      '  a:',
      '    source: ./a.onnx   # the encoder',
      '  b: { source: "models/b c.onnx", quantize: { dtype: int8 } }',
      "  c: {source: 'c.onnx'}",
      '  d:',
      '    source: ./all/*.onnx',
      '    calibration: { data: ./cal.npz }',
      '  e:',
      '    resource: x.onnx',
    ].join('\n');
    expect(recipeSources(text)).toEqual(['./a.onnx', 'models/b c.onnx', 'c.onnx']);
  });

  it('adds up the sources of build (relative to the recipe) and the input of repack; other commands read none', () => {
    const m = machine({ '/p/compress.yaml': 'models:\n  a: { source: ./a.onnx }\n  b: { source: ./a.onnx }\n  c: { source: ./b.onnx }\n', '/p/a.onnx': 100, '/p/b.onnx': 20, '/q/r.yaml': 'models:\n  x:\n    source: ../p/a.onnx\n', '/p/in.onnx': 7 });
    expect(modelBytes(['build'], m)).toBe(120); // a.onnx once
    expect(modelBytes(['build', '--no-cache', '-o', 'out'], m)).toBe(120);
    expect(modelBytes(['build', '/q/r.yaml', '--quiet'], m)).toBe(100);
    expect(modelBytes(['--debug', 'build', '/q/r.yaml'], m)).toBe(100);
    expect(modelBytes(['repack', 'in.onnx', 'out.onnx', '--inline'], m)).toBe(7);
    expect(modelBytes(['validate'], m)).toBe(0);
    expect(modelBytes(['inspect', 'in.onnx'], m)).toBe(0);
    expect(modelBytes(['build', '--no-such-option'], m)).toBe(0); // the command reports the usage error
    expect(modelBytes(['build', 'missing.yaml'], m)).toBe(0);
    // Read only when it is a regular file within the recipe limit (a FIFO or /dev/zero has no size here).
    const read = (f: string) => (f === '/p/compress.yaml' ? 'models:\n  a: { source: ./a.onnx }\n' : undefined);
    expect(modelBytes(['build'], { ...m, read, size: (f) => (f === '/p/a.onnx' ? 100 : undefined) })).toBe(0);
    expect(modelBytes(['build'], { ...m, read, size: (f) => (f === '/p/a.onnx' ? 100 : f === '/p/compress.yaml' ? 256 * 1024 + 1 : undefined) })).toBe(0);
    expect(modelBytes(['build'], { ...m, read, size: (f) => (f === '/p/a.onnx' ? 100 : f === '/p/compress.yaml' ? 40 : undefined) })).toBe(100);
  });

  it('relaunches only for enough bytes, on Linux with glibc ≥ 2.35 and THP on request, when the tunable is not set and nobody debugs this process', () => {
    const files = { '/p/compress.yaml': 'models:\n  a:\n    source: a.onnx\n', '/p/a.onnx': BIG };
    expect(shouldRelaunch(['build'], machine(files))).toBe(true);
    expect(shouldRelaunch(['build'], machine({ ...files, '/p/a.onnx': BIG - 1 }))).toBe(false);
    expect(shouldRelaunch(['validate'], machine(files))).toBe(false);
    expect(shouldRelaunch(['build'], machine(files, { platform: 'darwin' }))).toBe(false);
    expect(shouldRelaunch(['build'], machine(files, { env: { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' } }))).toBe(false);
    expect(shouldRelaunch(['build'], machine(files, { env: { GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' } }))).toBe(true);
    expect(shouldRelaunch(['build'], machine(files, { execArgv: ['--inspect-brk'] }))).toBe(false);
    expect(shouldRelaunch(['build'], machine(files, { execArgv: ['--cpu-prof', '--cpu-prof-dir=/tmp/p'] }))).toBe(false);
    expect(shouldRelaunch(['build'], machine(files, { execArgv: ['--max-old-space-size=4096'] }))).toBe(true);
    const thp = (mode: string) => machine(files, { read: (f) => (f.endsWith('/enabled') ? mode : machine(files).read(f)) });
    expect(shouldRelaunch(['build'], thp('[always] madvise never'))).toBe(false);
    expect(shouldRelaunch(['build'], thp('always madvise [never]'))).toBe(false);
    expect(shouldRelaunch(['build'], machine(files, { glibc: () => undefined }))).toBe(false); // musl
    expect(shouldRelaunch(['build'], machine(files, { glibc: () => '2.31' }))).toBe(false); // no such tunable yet
    expect(shouldRelaunch(['build'], machine(files, { glibc: () => '2.35' }))).toBe(true);
  });
});

const TSX = pathToFileURL(resolve('node_modules/tsx/dist/loader.mjs')).href;

/**
 * A driver process that relaunches `child.mjs` through `relaunched` (as src/cli.ts relaunches the CLI) on
 * a machine that says yes, and exits with what it answers.
 */
function driver(dir: string, childBody: string, recipe = 'models:\n  m:\n    source: m.onnx\n'): string {
  writeFileSync(join(dir, 'child.mjs'), childBody);
  const src = pathToFileURL(resolve('src/cli/relaunch.ts')).href;
  writeFileSync(
    join(dir, 'driver.mts'),
    `import { relaunched } from ${JSON.stringify(src)};
const recipe = ${JSON.stringify(recipe)};
const read = (f) => (f.endsWith('/enabled') ? 'always [madvise] never' : recipe);
const machine = { platform: 'linux', env: {}, execArgv: [], cwd: ${JSON.stringify(dir)}, read, size: (f) => (f.endsWith('.yaml') ? recipe.length : ${BIG}), glibc: () => '2.36' };
const code = await relaunched(['build'], { script: ${JSON.stringify(join(dir, 'child.mjs'))}, machine });
process.exit(code === undefined ? 99 : code);
`,
  );
  return join(dir, 'driver.mts');
}

describe('the relaunched process', () => {
  it('gets glibc.malloc.hugetlb=1 (beside other tunables), the same arguments and stdio, and its exit code is the command\'s', () => {
    const dir = mkdtempSync(join(tmp, 'code-'));
    const d = driver(dir, `console.log(JSON.stringify({ tunables: process.env.GLIBC_TUNABLES, argv: process.argv.slice(2) })); console.error('to stderr'); process.exit(3);`);
    const r = spawnSync(process.execPath, ['--import', TSX, d], { cwd: dir, encoding: 'utf8', env: { ...process.env, GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }, timeout: 60_000 });
    expect(r.status).toBe(3);
    expect(JSON.parse(r.stdout)).toEqual({ tunables: 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1', argv: ['build'] });
    expect(r.stderr).toBe('to stderr\n');
  });

  // NODE_EXTRA_CA_CERTS costs every Node start ~0.09 s (OpenSSL and the certificates, loaded at startup):
  // the relaunched process goes without it unless the recipe names a module (user code that may connect).
  it('starts without NODE_EXTRA_CA_CERTS, unless the recipe names a JS or TS data module', () => {
    const certs = (recipe: string) => {
      const dir = mkdtempSync(join(tmp, 'certs-'));
      const d = driver(dir, `console.log(JSON.stringify(process.env.NODE_EXTRA_CA_CERTS ?? null)); process.exit(0);`, recipe);
      const r = spawnSync(process.execPath, ['--import', TSX, d], { cwd: dir, encoding: 'utf8', env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'none.pem') }, timeout: 60_000 });
      expect(r.status).toBe(0);
      return { value: JSON.parse(r.stdout) as string | null, dir };
    };
    expect(certs('models:\n  m:\n    source: m.onnx\n    quantize: { dtype: int8 }\n').value).toBeNull();
    const kept = certs('models:\n  m:\n    source: m.onnx\n    calibration: { data: ./calib.MJS }\n');
    expect(kept.value).toBe(join(kept.dir, 'none.pem'));
    expect(certs("models:\n  m:\n    source: m.onnx\n    evaluate:\n      data: 'samples.ts'\n").value).not.toBeNull();
    expect(certs('models:\n  m:\n    source: m.onnx\n    calibration: { data: ./calib.npz }\n').value).toBeNull();
  });

  it('receives SIGTERM sent to the command, and the command then ends by the same signal, leaving no process behind', async () => {
    const dir = mkdtempSync(join(tmp, 'signal-'));
    const pidFile = join(dir, 'child.pid');
    const d = driver(dir, `import { writeFileSync } from 'node:fs'; writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000);`);
    const p = spawn(process.execPath, ['--import', TSX, d], { cwd: dir, stdio: 'ignore' });
    const t0 = Date.now();
    while (!existsSync(pidFile) && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
    const childPid = Number(readFileSync(pidFile, 'utf8'));
    const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => p.on('exit', (code, signal) => r({ code, signal })));
    p.kill('SIGTERM');
    expect(await ended).toEqual({ code: null, signal: 'SIGTERM' });
    const alive = () => {
      try {
        process.kill(childPid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const t1 = Date.now();
    while (alive() && Date.now() - t1 < 10_000) await new Promise((r) => setTimeout(r, 50));
    expect(alive()).toBe(false);
  }, 60_000);

  // The real command on a model big enough to relaunch for (where this machine relaunches): a 65 MiB file
  // of zero bytes fails as bad input, at once, with the file and byte offset, said once.
  it.runIf(existsSync('dist/cli.js'))('`build` of a 65 MiB file of zeros: exit 2, "field number 0" at byte 0, one line', () => {
    const dir = mkdtempSync(join(tmp, 'zeros-'));
    writeFileSync(join(dir, 'big.onnx'), '');
    truncateSync(join(dir, 'big.onnx'), BIG + 2 ** 20);
    writeFileSync(join(dir, 'compress.yaml'), 'models:\n  big:\n    source: ./big.onnx\n    quantize: { dtype: int8 }\n');
    const r = spawnSync(process.execPath, [resolve('dist/cli.js'), 'build', '--no-cache', '--quiet', '--out', 'out'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    const lines = r.stderr.split('\n').filter((l) => l.includes('field number 0'));
    expect(lines).toEqual([`onnx-compress: big: ${join(dir, 'big.onnx')} (byte 0): field number 0`]);
    expect(existsSync(join(dir, 'out', 'big.onnx'))).toBe(false);
  });

  // The decision reads the recipe before the command checks it: a FIFO (no writer) would block it, and
  // /dev/zero never end (both were 60 s timeouts of the corpus until the read was limited to regular files).
  it.runIf(existsSync('dist/cli.js') && process.platform === 'linux')('`build` of a recipe that is a FIFO or /dev/zero: exit 2 at once, the recipe named', () => {
    const dir = mkdtempSync(join(tmp, 'fifo-'));
    expect(spawnSync('mkfifo', [join(dir, 'compress.yaml')]).status).toBe(0);
    for (const recipe of [join(dir, 'compress.yaml'), '/dev/zero']) {
      const r = spawnSync(process.execPath, [resolve('dist/cli.js'), 'build', recipe, '--no-cache', '--quiet', '--out', 'out'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
      expect(r.signal).toBe(null);
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(recipe === '/dev/zero' ? '/dev/zero' : 'compress.yaml');
    }
  });
});
