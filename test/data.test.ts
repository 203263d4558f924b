/**
 * The recipe and the sample loader agree on data files: every extension the loader reads is one a recipe
 * may name, and a recipe naming such a file validates and its samples load. (The formats' own behaviour
 * is tested in eval.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DATA_FORMATS, dataExtensions, dataFormatOf, loadSamples, type DataFormat, type InputSpec } from '../src/data/index.js';
import { loadRecipe } from '../src/recipe/index.js';
import { zip } from './zip-writer.js';

const MODEL = new URL('./fixtures/fmnist-cnn/model.onnx', import.meta.url).pathname;
const X_INPUTS: InputSpec[] = [{ name: 'x', type: 'float32', dims: ['batch', 3] }];
const ROWS = [
  [1, 2, 3],
  [4, 5, 6],
];

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'onnx-compress-data-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** x as a float32 .npy of shape (2, 3): the first axis is the samples. */
function npy(): Uint8Array {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const data = new Float32Array(ROWS.flat());
  const out = new Uint8Array(10 + header.length + data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), 10);
  out.set(new Uint8Array(data.buffer), 10 + header.length);
  return out;
}

/** An .npz holding one deflated entry "x.npy". */
const npz = (): Uint8Array => zip([{ name: 'x.npy', data: npy() }]);

const items = JSON.stringify(ROWS.map((r) => ({ inputs: { x: [r] } })));

/** A file of each format holding the two samples of ROWS. */
function content(format: DataFormat, ext: string): string | Uint8Array {
  switch (format) {
    case 'jsonl':
      return ROWS.map((r) => JSON.stringify({ inputs: { x: [r] } })).join('\n') + '\n';
    case 'npy':
      return npy();
    case 'npz':
      return npz();
    case 'module':
      if (ext === '.cjs' || ext === '.cts') return `module.exports = ${items};\n`;
      return ext.endsWith('ts') ? `const samples: unknown[] = ${items};\nexport default samples;\n` : `export default ${items};\n`;
  }
}

describe('data file types', () => {
  it('has one list, each extension naming one format', () => {
    expect([...dataExtensions].sort()).toEqual(['.cjs', '.cts', '.js', '.jsonl', '.mjs', '.mts', '.ndjson', '.npy', '.npz', '.ts']);
    for (const [format, exts] of Object.entries(DATA_FORMATS)) for (const e of exts) expect(dataFormatOf(e.toUpperCase())).toBe(format);
    expect(dataFormatOf('.csv')).toBeUndefined();
  });

  for (const ext of dataExtensions) {
    it(`a recipe with data: ./x${ext} validates and its samples load`, async () => {
      const format = dataFormatOf(ext)!;
      const sub = mkdtempSync(join(dir, `${ext.slice(1)}-`));
      writeFileSync(join(sub, `x${ext}`), content(format, ext));
      const recipeFile = join(sub, 'compress.yaml');
      writeFileSync(
        recipeFile,
        ['models:', '  m:', `    source: ${MODEL}`, '    quantize: { dtype: int8 }', `    calibration: { data: ./x${ext} }`, ''].join('\n'),
      );
      const { builds } = await loadRecipe(recipeFile);
      expect(builds[0].calibration?.data).toBe(join(sub, `x${ext}`));
      const samples = await loadSamples(builds[0].calibration!, X_INPUTS, { recipeFile });
      expect(samples.map((s) => [s.feeds.x.dims, Array.from(s.feeds.x.data as Float32Array)])).toEqual(ROWS.map((r) => [[1, 3], r]));
    });
  }

  it('a file type neither reads is refused by both, naming the same list', async () => {
    const sub = mkdtempSync(join(dir, 'csv-'));
    writeFileSync(join(sub, 'x.csv'), '1,2,3\n');
    const recipeFile = join(sub, 'compress.yaml');
    writeFileSync(recipeFile, ['models:', '  m:', `    source: ${MODEL}`, '    quantize: { dtype: int8 }', '    calibration: { data: ./x.csv }', ''].join('\n'));
    const list = dataExtensions.join(', ');
    await expect(loadRecipe(recipeFile)).rejects.toThrow(`(expected ${list} or a folder)`);
    await expect(loadSamples({ data: join(sub, 'x.csv') }, X_INPUTS)).rejects.toThrow(`use a ${list} file`);
  });
});
