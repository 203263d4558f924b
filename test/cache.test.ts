/**
 * The cache's pieces: the stat cache (when a recorded hash is trusted), the entry store (what counts as
 * corrupt), and two processes filling one cache folder at once.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeModel, encodeModelToBytes } from '../src/onnx/codec.js';
import { ModelCache } from '../src/pipeline/cache.js';
import { hashFile, hashPath, StatCache } from '../src/pipeline/hash.js';
import type { Manifest } from '../src/pipeline/manifest.js';

const FMNIST = resolve('test/fixtures/fmnist-cnn/model.onnx');
const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'cache-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A file whose mtime is safely in the past (outside the racy window). */
function oldFile(name: string, content: string): string {
  const f = join(tmp, name);
  writeFileSync(f, content);
  const past = new Date(Date.now() - 60_000);
  utimesSync(f, past, past);
  return f;
}

describe('stat cache', () => {
  it('serves a recorded hash for an unchanged file without reading it, and re-hashes a changed one', async () => {
    const f = oldFile('a.bin', 'hello');
    const stats = new StatCache();
    expect((await hashFile(f, stats)).sha256).toBe(sha('hello'));
    // Plant a wrong hash for the current stat: if it comes back, the file was not read.
    const fake = 'f'.repeat(64);
    stats.record(f, statSync(f), fake, Date.now());
    expect((await hashFile(f, stats)).sha256).toBe(fake);
    appendFileSync(f, '!');
    expect((await hashFile(f, stats)).sha256).toBe(sha('hello!'));
  });

  it('does not trust an entry hashed within the racy window of the mtime', async () => {
    const f = join(tmp, 'racy.bin');
    writeFileSync(f, 'racy');
    const st = statSync(f);
    const stats = new StatCache();
    stats.record(f, st, 'e'.repeat(64), st.mtimeMs + 10); // hashed 10 ms after the last write
    expect((await hashFile(f, stats)).sha256).toBe(sha('racy'));
  });

  it('persists to stats.json and survives a corrupt one', async () => {
    const dir = join(tmp, 'stats');
    const f = oldFile('b.bin', 'persist');
    const s1 = new StatCache(dir);
    await hashFile(f, s1);
    s1.flush();
    const s2 = new StatCache(dir);
    expect(s2.lookup(f, statSync(f))?.sha256).toBe(sha('persist'));
    writeFileSync(join(dir, 'stats.json'), '{"version":1,"entr');
    const s3 = new StatCache(dir);
    expect(s3.lookup(f, statSync(f))).toBeUndefined();
    expect((await hashFile(f, s3)).sha256).toBe(sha('persist'));
  });

  it('hashes folders by relative path and content', async () => {
    const mk = (name: string, files: Record<string, string>) => {
      const d = join(tmp, name);
      for (const [k, v] of Object.entries(files)) {
        mkdirSync(join(d, k, '..'), { recursive: true });
        writeFileSync(join(d, k), v);
      }
      return d;
    };
    const stats = new StatCache();
    const a = await hashPath(mk('d1', { 'x.npy': '1', 'sub/y.npy': '2' }), stats);
    expect(await hashPath(mk('d2', { 'sub/y.npy': '2', 'x.npy': '1' }), stats)).toBe(a);
    expect(await hashPath(mk('d3', { 'x.npy': '1', 'sub/z.npy': '2' }), stats)).not.toBe(a);
    expect(await hashPath(mk('d4', { 'x.npy': '1', 'sub/y.npy': '3' }), stats)).not.toBe(a);
  });
});

describe('entry store', () => {
  const key = 'a'.repeat(64);
  const bytes = Buffer.from('model bytes');
  const manifest = { cache: { key }, output: { file: 'm.onnx', sha256: sha(bytes), bytes: bytes.length } } as unknown as Manifest;

  it('round-trips, and treats missing, truncated, altered or mislabeled entries as misses', () => {
    const cache = new ModelCache(join(tmp, 'store'), new StatCache());
    expect(cache.get(key)).toBe('absent');
    cache.put(key, bytes, manifest);
    const hit = cache.get(key);
    expect(typeof hit).toBe('object');
    expect(Buffer.from((hit as { bytes: Uint8Array }).bytes).toString()).toBe('model bytes');

    truncateSync(cache.modelFile(key), 3);
    expect(cache.get(key)).toBe('corrupt');
    writeFileSync(cache.modelFile(key), 'model bytez'); // same size, other bytes
    expect(cache.get(key)).toBe('corrupt');
    rmSync(cache.modelFile(key));
    expect(cache.get(key)).toBe('corrupt');

    cache.put(key, bytes, manifest);
    writeFileSync(cache.manifestFile(key), JSON.stringify({ ...manifest, cache: { key: 'b'.repeat(64) } }));
    expect(cache.get(key)).toBe('corrupt');
    writeFileSync(cache.manifestFile(key), '{"cache":');
    expect(cache.get(key)).toBe('corrupt');
    cache.put(key, bytes, manifest);
    expect(typeof cache.get(key)).toBe('object');
    // Source size statistics are kept by source hash, for the settings they were measured with.
    const sizes = { bytes: 10, gzip: 9, brotli: 8, parameters: 2, bytesByDtype: { float32: 8 } };
    expect(cache.getSizes(key)).toBeUndefined();
    cache.putSizes(key, sizes);
    expect(cache.getSizes(key)).toEqual(sizes);
    writeFileSync(join(tmp, 'store', `sizes-${key}.json`), JSON.stringify({ ...sizes, compression: { gzipLevel: 9, brotliQuality: 11 } }));
    expect(cache.getSizes(key)).toBeUndefined();
    // No temp files are left behind.
    expect(readdirSync(join(tmp, 'store')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

describe('two processes on one cache', () => {
  const CHILD = `
import { writeFileSync } from 'node:fs';
import { loadRecipe } from ${JSON.stringify(resolve('src/recipe/index.ts'))};
import { compressBuild } from ${JSON.stringify(resolve('src/pipeline.ts'))};
const [recipeFile, cacheDir, out] = process.argv.slice(2);
const recipe = await loadRecipe(recipeFile);
const r = await compressBuild(recipe.builds[0], { cacheDir, recipeFile });
writeFileSync(out, r.bytes);
console.log(JSON.stringify({ cached: r.cached, key: r.key, sha256: r.manifest.output.sha256 }));
`;

  function child(args: string[]): Promise<{ code: number; out: string; err: string }> {
    return new Promise((done) => {
      const p = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: resolve('.'), env: { ...process.env, CI: '1' } });
      let out = '';
      let err = '';
      p.stdout.on('data', (d) => (out += d));
      p.stderr.on('data', (d) => (err += d));
      p.on('close', (code) => done({ code: code ?? -1, out, err }));
    });
  }

  it('both produce byte-identical correct outputs and leave a valid entry', async () => {
    const dir = join(tmp, 'concurrent');
    mkdirSync(dir);
    copyFileSync(FMNIST, join(dir, 'fmnist.onnx'));
    writeFileSync(join(dir, 'compress.yaml'), 'defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n');
    writeFileSync(join(dir, 'child.mts'), CHILD);
    const cacheDir = join(dir, 'cache');
    const run = (i: number) => child([join(dir, 'child.mts'), join(dir, 'compress.yaml'), cacheDir, join(dir, `out${i}.onnx`)]);
    const [a, b] = await Promise.all([run(1), run(2)]);
    expect(a.code, a.err).toBe(0);
    expect(b.code, b.err).toBe(0);
    const [ra, rb] = [JSON.parse(a.out.trim().split('\n').pop()!), JSON.parse(b.out.trim().split('\n').pop()!)];
    expect(ra.key).toBe(rb.key);
    expect([ra.cached, rb.cached]).toContain(false); // at least one compressed (usually both: a real race)
    const expected = encodeModelToBytes(decodeModel(readFileSync(FMNIST)));
    const [oa, ob] = [readFileSync(join(dir, 'out1.onnx')), readFileSync(join(dir, 'out2.onnx'))];
    expect(oa.equals(ob)).toBe(true);
    expect(oa.equals(Buffer.from(expected))).toBe(true);
    expect(ra.sha256).toBe(sha(oa));
    // The entry they left is complete and a third run hits it.
    const cache = new ModelCache(cacheDir, new StatCache());
    const entry = cache.get(ra.key);
    expect(typeof entry).toBe('object');
    expect(existsSync(join(cacheDir, 'stats.json'))).toBe(true);
    expect(readdirSync(cacheDir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const c = await run(3);
    expect(JSON.parse(c.out.trim().split('\n').pop()!).cached).toBe(true);
  });
});
