/**
 * gzip / brotli size figures (src/pipeline/sizes.ts): exact ones streamed over chunks equal zlib's
 * one-shot sizes of the joined bytes; sampled estimates of large files come within their stated error
 * (plus the small context bias) of the exact sizes, are deterministic, and are labelled in the manifest,
 * whose settings say which files were sampled.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import zlib from 'node:zlib';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpStack, writeSynthetic } from '../bench/lib/synthetic.js';
import { runRecipe } from '../src/pipeline.js';
import { compressedSizes, exactSizes, sampledSizes, SIZE_SETTINGS } from '../src/pipeline/sizes.js';
import { seededUint32 } from '../src/random.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'sizes-test-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** float32 weights ~N(0, 0.02) with a quarter of them zero: compressible, like pruned weights. */
function weights(n: number, seed = 7): Uint8Array {
  const next = seededUint32(seed);
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = (next() + 1) / 4294967297;
    const v = next() / 4294967296;
    f[i] = i % 4 === 0 ? 0 : Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v) * 0.02;
  }
  return new Uint8Array(f.buffer);
}

const gzipExact = (b: Uint8Array) => zlib.gzipSync(b, { level: SIZE_SETTINGS.gzipLevel }).length;
const brotliExact = (b: Uint8Array) =>
  zlib.brotliCompressSync(b, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: SIZE_SETTINGS.brotliQuality, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length } }).length;

/** Cuts bytes into chunks of varied sizes (some tiny, some over 1 MiB), like an encoding's pieces. */
function chunked(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const sizes = [3, 17, 2 << 20, 1, 4096, 300_000, 9];
  for (let at = 0, i = 0; at < b.length; i++) {
    const n = Math.min(sizes[i % sizes.length], b.length - at);
    out.push(b.subarray(at, at + n));
    at += n;
  }
  return out;
}

describe('size figures', () => {
  it('exact: streamed over chunks, equal to compressing the joined bytes', async () => {
    const b = weights(700_000); // 2.8 MB
    const s = await exactSizes(chunked(b));
    expect(s.estimate).toBeUndefined();
    expect(s.gzip).toBe(gzipExact(b));
    // Brotli may split its blocks differently when input arrives in pieces: within 0.1 %.
    expect(Math.abs(s.brotli / brotliExact(b) - 1)).toBeLessThan(1e-3);
  });

  it('sampled: within the stated error (plus 0.5 % for brotli context) of the exact sizes, deterministic, labelled', async () => {
    const b = weights(3_000_000); // 12 MB: over exactBytes
    expect(b.length).toBeGreaterThan(SIZE_SETTINGS.exactBytes);
    const s = await sampledSizes(chunked(b));
    const again = await sampledSizes([b]);
    expect(again).toEqual(s); // same windows whatever the chunking
    expect(s.estimate).toMatchObject({ method: 'sampled', windows: SIZE_SETTINGS.sample.chunks, sampledBytes: SIZE_SETTINGS.sample.chunks * SIZE_SETTINGS.sample.chunkBytes });
    const g = gzipExact(b);
    const br = brotliExact(b);
    expect(Math.abs(s.gzip / g - 1)).toBeLessThan(s.estimate!.samplingError.gzip + 0.005);
    expect(Math.abs(s.brotli / br - 1)).toBeLessThan(s.estimate!.samplingError.brotli + 0.005);
  });

  it('several files: summed, exact for small ones, estimated for large ones', async () => {
    const small = weights(100_000, 1);
    const large = weights(2_500_000, 2);
    const both = await compressedSizes([[small], chunked(large)]);
    const s1 = await exactSizes([small]);
    const s2 = await sampledSizes([large]);
    expect(both.gzip).toBe(s1.gzip + s2.gzip);
    expect(both.brotli).toBe(s1.brotli + s2.brotli);
    expect(both.estimate).toEqual(s2.estimate);
    expect((await compressedSizes([[small]])).estimate).toBeUndefined();
  });

  it('a build of a model over exactBytes: source sizes estimated and labelled, small output exact; manifest valid', async () => {
    const file = join(tmp, 'mlp.onnx');
    writeSynthetic(mlpStack({ layers: 2, hidden: 256, ff: 2048 }), file); // ≈ 8.4 MB
    writeFileSync(join(tmp, 'compress.yaml'), 'models:\n  mlp:\n    source: ./mlp.onnx\n    device: cpu\n    quantize: { dtype: int4, granularity: 32 }\n');
    const { results } = await runRecipe(join(tmp, 'compress.yaml'), { cacheDir: false, outDir: join(tmp, 'out') });
    const m = results[0].manifest;
    expect(m.sizes.before.bytes).toBeGreaterThan(SIZE_SETTINGS.exactBytes);
    expect(m.sizes.before.estimate?.method).toBe('sampled');
    expect(m.sizes.after.bytes).toBeLessThan(SIZE_SETTINGS.exactBytes);
    expect(m.sizes.after.estimate).toBeUndefined();
    expect(m.sizes.compression).toEqual(SIZE_SETTINGS);
    const src = readFileSync(file);
    expect(Math.abs(m.sizes.before.gzip / gzipExact(src) - 1)).toBeLessThan(m.sizes.before.estimate!.samplingError.gzip + 0.005);
    const out = readFileSync(join(tmp, 'out', 'mlp.onnx'));
    expect(m.sizes.after.gzip).toBe(gzipExact(out));
    const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true });
    const validate = ajv.compile(JSON.parse(readFileSync(resolve('schemas/manifest.schema.json'), 'utf8')));
    expect(validate(JSON.parse(JSON.stringify(m))), JSON.stringify(validate.errors)).toBe(true);
  });
});
