/**
 * Large files hashed on worker threads (src/pipeline/hash.ts): the hash is the file's sha256, a hash
 * started early (hashEarly, which the command line calls for a recipe's sources before it loads the
 * pipeline) is used only while the file is unchanged, and a file the stat cache knows is not read. When
 * the command relaunched itself, the first process hashes the sources and hands the hashes over
 * (src/cli/early-hash.ts): the relaunched one uses them only for the stat it sees.
 */
import { spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { type HandedHash, type HashHandOver, hashEarly, hashFile, pendingEarlyHashes, StatCache, WORKER_HASH_FROM, workerHashCount } from '../src/pipeline/hash.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const twoCores = (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length) > 1;

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'early-hash-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A file of WORKER_HASH_FROM + 1 MiB random bytes whose mtime is `ageMs` in the past (outside the racy window). */
function bigFile(name: string, ageMs = 60_000): { file: string; bytes: Buffer } {
  const file = join(tmp, name);
  const bytes = randomFillSync(Buffer.alloc(WORKER_HASH_FROM + 2 ** 20));
  writeFileSync(file, bytes);
  const past = new Date(Date.now() - ageMs);
  utimesSync(file, past, past);
  return { file, bytes };
}

describe('hashing large files on worker threads', () => {
  it('gives the sha256 of the bytes, and records it in the stat cache', async () => {
    const { file, bytes } = bigFile('plain.bin');
    const stats = new StatCache();
    const h = await hashFile(file, stats);
    expect(h).toMatchObject({ sha256: sha(bytes), bytes: bytes.length });
    expect(h.entry?.sha256).toBe(sha(bytes));
  });

  it.runIf(twoCores)('uses an early hash only while the file is unchanged', async () => {
    const a = bigFile('early.bin');
    const stats = new StatCache();
    expect(hashEarly([a.file], stats)).toBe(1);
    expect(pendingEarlyHashes()).toContain(a.file);
    expect((await hashFile(a.file, stats)).sha256).toBe(sha(a.bytes));
    expect(pendingEarlyHashes()).not.toContain(a.file);

    // Rewritten after the early hash started (same size, other bytes, another mtime): hashed again.
    const b = bigFile('changed.bin');
    const fresh = new StatCache();
    hashEarly([b.file], fresh);
    const other = randomFillSync(Buffer.alloc(b.bytes.length));
    writeFileSync(b.file, other);
    const past = new Date(Date.now() - 30_000);
    utimesSync(b.file, past, past);
    expect((await hashFile(b.file, fresh)).sha256).toBe(sha(other));
  });

  it.runIf(twoCores)('does not read a file the stat cache knows, or a small one; a file gone meanwhile is an io error naming it', async () => {
    const known = bigFile('known.bin');
    const stats = new StatCache();
    await hashFile(known.file, stats);
    const small = join(tmp, 'small.bin');
    writeFileSync(small, 'x');
    expect(hashEarly([known.file, small, join(tmp, 'missing.bin')], stats)).toBe(0);
    expect(pendingEarlyHashes()).toEqual([]);

    const gone = bigFile('gone.bin');
    hashEarly([gone.file], stats);
    unlinkSync(gone.file);
    await expect(hashFile(gone.file, stats)).rejects.toThrow(/cannot read: ENOENT/);
    await expect(hashFile(gone.file, stats)).rejects.toMatchObject({ kind: 'io', location: { file: gone.file } });
  });

  it.runIf(twoCores)('takes a handed-over hash only if it was taken of the stat the file has; else hashes the file itself', async () => {
    const handOver = (hashes: Record<string, HandedHash | undefined>): HashHandOver => ({ take: async (file) => hashes[file], awaited: () => {} });
    const stat = (file: string) => {
      const { size, mtimeMs, ino } = statSync(file);
      return { size, mtimeMs, ino };
    };
    // A hash the file's bytes do not have proves where the answer came from.
    const a = bigFile('handed.bin');
    const told = { file: a.file, sha256: 'f'.repeat(64), ...stat(a.file), hashedAt: Date.now() };
    const workers = workerHashCount();
    expect(hashEarly([a.file], new StatCache(), handOver({ [a.file]: told }))).toBe(1);
    const stats = new StatCache();
    expect((await hashFile(a.file, stats)).sha256).toBe(told.sha256);
    expect(workerHashCount()).toBe(workers);

    // Handed over for another stat of the file (rewritten since), or not at all: hashed here.
    const b = bigFile('handed-stale.bin');
    const c = bigFile('handed-none.bin');
    hashEarly([b.file, c.file], new StatCache(), handOver({ [b.file]: { ...told, file: b.file, ...stat(b.file), mtimeMs: stat(b.file).mtimeMs - 1000 } }));
    expect((await hashFile(b.file, stats)).sha256).toBe(sha(b.bytes));
    expect((await hashFile(c.file, stats)).sha256).toBe(sha(c.bytes));
    expect(workerHashCount()).toBe(workers + 2);
  });

  // The command line relaunched (src/cli.ts, relaunch.ts): the first process hashes the recipe's sources
  // and sends the hashes down a pipe; the relaunched one takes them and starts no hashing of its own.
  it.runIf(twoCores)('a relaunched build takes its large source\'s hash from the first process', () => {
    const dir = mkdtempSync(join(tmp, 'relaunch-'));
    const m = bigFile('relaunch-m.onnx');
    writeFileSync(join(dir, 'compress.yaml'), `models:\n  m:\n    source: ${m.file}\n`);
    const src = (p: string) => JSON.stringify(pathToFileURL(resolve(p)).href);
    writeFileSync(
      join(dir, 'child.mts'),
      `import { hashSourcesEarly } from ${src('src/cli/early-hash.ts')};
import { hashFile, statCacheFor, workerHashCount } from ${src('src/pipeline/hash.ts')};
hashSourcesEarly(process.argv.slice(2));
const h = await hashFile(${JSON.stringify(m.file)}, statCacheFor(undefined));
console.log(JSON.stringify({ sha256: h.sha256, workers: workerHashCount() }));
process.exit(0);
`,
    );
    writeFileSync(
      join(dir, 'driver.mts'),
      `import { relaunched } from ${src('src/cli/relaunch.ts')};
import { handOverHashes } from ${src('src/cli/early-hash.ts')};
import { readFileSync, statSync } from 'node:fs';
const argv = ['build', '--no-cache'];
const read = (f) => (f.endsWith('/enabled') ? 'always [madvise] never' : readFileSync(f, 'utf8'));
const machine = { platform: 'linux', env: {}, execArgv: [], cwd: process.cwd(), read, size: (f) => statSync(f).size, glibc: () => '2.36' };
const code = await relaunched(argv, { script: ${JSON.stringify(join(dir, 'child.mts'))}, machine, handOver: (pipe) => void handOverHashes(argv, pipe) });
process.exit(code === undefined ? 99 : code);
`,
    );
    const tsx = pathToFileURL(resolve('node_modules/tsx/dist/loader.mjs')).href;
    const run = (script: string) => spawnSync(process.execPath, ['--import', tsx, join(dir, script), 'build', '--no-cache'], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    const relaunchedRun = run('driver.mts');
    expect(relaunchedRun.status).toBe(0);
    expect(JSON.parse(relaunchedRun.stdout)).toEqual({ sha256: sha(m.bytes), workers: 0 });
    // The same process without a first one: it hashes the source on a worker of its own.
    const alone = run('child.mts');
    expect(alone.status).toBe(0);
    expect(JSON.parse(alone.stdout)).toEqual({ sha256: sha(m.bytes), workers: 1 });
  }, 120_000);

  // The command line hashes a recipe's large sources before it loads the pipeline, and a large output is
  // hashed from its file while it is verified: the manifest has both files' hashes, with and without the
  // cache, and a second build is a hit.
  it.runIf(existsSync('dist/cli.js'))('`build` of a 68 MB model to a 68 MB output: the manifest has both sha256s, and the second build is a cache hit', () => {
    const dir = mkdtempSync(join(tmp, 'cli-'));
    const [K, N] = [4096, 4160]; // 68 MB of float32 weight
    const w = new Float32Array(K * N);
    for (let i = 0; i < w.length; i++) w[i] = Math.sin(i * 0.618) * 0.05;
    const graph = makeGraph('big', [makeNode('MatMul', ['x', 'w'], ['y'])], [makeValueInfo('x', DataType.FLOAT, [1, K])], [makeValueInfo('y', DataType.FLOAT, [1, N])], [makeTensor('w', DataType.FLOAT, [K, N], w)]);
    const bytes = encodeModelToBytes(makeModel(graph));
    expect(bytes.length).toBeGreaterThan(WORKER_HASH_FROM);
    writeFileSync(join(dir, 'big.onnx'), bytes);
    writeFileSync(join(dir, 'compress.yaml'), 'models:\n  big:\n    source: ./big.onnx\n    webCheck: false\n    prune: { method: magnitude, rate: 0.5 }\n');
    const build = (...extra: string[]) => {
      const r = spawnSync(process.execPath, [resolve('dist/cli.js'), 'build', '--quiet', '--out', 'out', ...extra], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const manifest = JSON.parse(readFileSync(join(dir, 'out', 'big.manifest.json'), 'utf8')) as { source: object; output: { sha256: string; bytes: number }; cache: { key: string } };
      const out = readFileSync(join(dir, 'out', 'big.onnx'));
      expect(out.length).toBeGreaterThan(WORKER_HASH_FROM);
      expect(manifest.output).toMatchObject({ sha256: sha(out), bytes: out.length });
      return manifest;
    };
    const noCache = build('--no-cache');
    expect(noCache.source).toEqual({ file: 'big.onnx', sha256: sha(bytes), bytes: bytes.length });
    const first = build('--cache-dir', 'cache');
    expect(first.source).toEqual(noCache.source);
    expect(first.output).toEqual(noCache.output);
    expect(first.cache.key).toBe(noCache.cache.key);
    const r = spawnSync(process.execPath, [resolve('dist/cli.js'), 'build', '--json', '--out', 'out', '--cache-dir', 'cache'], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)[0]).toMatchObject({ id: 'big', cached: true });
  }, 180_000);
});
