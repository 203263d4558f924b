/**
 * The bad-recipe / bad-data corpus: several hundred hostile projects, generated per class (billion laughs,
 * deep nesting, huge mappings, huge samples / runs, infinite generators, npz bombs and malformed npz/npy,
 * FIFOs, symlink escapes, NUL and over-long names, outputs over sources and manifests, data modules that
 * throw null / never settle / exit, deep JSONL, broken models), each run through the real command.
 *
 *   npm run fuzz -- --corpus [--class name] [--limit-ms 5000] [--rss-mb 1024] [--out dir] [--compare other/cli.js]
 *
 * A case passes when the command exits 1 or 2 within --limit-ms of CPU time (wall time is reported too: on
 * a shared machine it says more about the load than the case; a case past it in wall time is timed twice)
 * with a one-line message that names a
 * place (file:line:col, byte offset, sample) and no "internal error" or stack trace, its peak RSS (the
 * largest process, onnxruntime's isolation child included) is at most --rss-mb, no input file changed,
 * and no written file holds the secret that symlink cases point at. `/usr/bin/time` gives RSS and CPU time.
 * Results: <out>/corpus.json (every case) and a per-class table on stdout. With --compare, every case is
 * also run with that CLI (a copy of an older build), alternately first and second so both see the same
 * load, and the table gives that CLI's figures before this one's (findings are this CLI's).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { decodeModel, encodeModelToBytes } from '../src/onnx/codec.js';
import { classifyMessage, killGroupAfter } from './fuzz-mutate.js';
import { zip } from '../test/zip-writer.js';

const FMNIST = path.resolve('test/fixtures/fmnist-cnn/model.onnx');
const SECRET = 'CORPUS-SECRET-7f3a9c';

export interface CorpusCase {
  cls: string;
  name: string;
  recipe?: string;
  /** Files of the project (text or bytes), relative to the project folder. */
  files?: Record<string, string | Uint8Array>;
  /** Extra setup in the project folder (FIFOs, symlinks); `outside` is a folder next to it holding the secret. */
  setup?: (dir: string, outside: string) => void;
  /** Command and arguments (default: build --out dist --no-cache). */
  args?: string[];
  env?: Record<string, string>;
  /** Copy fmnist.onnx into the project (default true). */
  model?: boolean;
}

const M = (extra = '', id = 'fmnist', source = 'fmnist.onnx') => `defaults:\n  device: cpu\nmodels:\n  ${id}:\n    source: ${source}\n${extra}`;
const image = (v = 0.5) => JSON.stringify([[Array.from({ length: 28 }, () => Array(28).fill(v))]]);
const goodLine = () => `{"inputs": {"image": ${image()}}, "label": 1}\n`;

/** A .npy file: the header dict as given (so it can lie), then `data`. */
function npy(header: string, data: Uint8Array = new Uint8Array(0), version = 1): Uint8Array {
  let h = header;
  const pre = version === 1 ? 10 : 12;
  while ((pre + h.length + 1) % 64) h += ' ';
  h += '\n';
  const head = Buffer.alloc(pre);
  Buffer.from('\x93NUMPY', 'latin1').copy(head, 0);
  head[6] = version;
  head[7] = 0;
  if (version === 1) head.writeUInt16LE(h.length, 8);
  else head.writeUInt32LE(h.length, 8);
  return Buffer.concat([head, Buffer.from(h, 'latin1'), data]);
}

const f32 = (n: number) => new Uint8Array(new Float32Array(n).fill(0.5).buffer);
const IMAGE_HEADER = (shape: string, descr = '<f4', fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;

/** fmnist with its largest initializer in an external file `location` (written as `data` unless `write` is false). */
function externalModel(location: string): { model: Uint8Array; data: Uint8Array } {
  const m = decodeModel(readFileSync(FMNIST), FMNIST);
  const t = m.graph!.initializer.reduce((a, b) => ((b.rawData?.length ?? 0) > (a.rawData?.length ?? 0) ? b : a));
  const data = t.rawData!;
  t.rawData = undefined;
  t.dataLocation = 1;
  t.externalData = [
    { key: 'location', value: location },
    { key: 'offset', value: '0' },
    { key: 'length', value: String(data.length) },
  ];
  return { model: encodeModelToBytes(m), data };
}

const mkfifo = (file: string) => {
  const p = spawnSync('mkfifo', [file]);
  if (p.status !== 0) throw new Error(`mkfifo ${file} failed`);
};

/** Every case of the corpus, by class. */
export function corpusCases(): CorpusCase[] {
  const cases: CorpusCase[] = [];
  const add = (cls: string, name: string, c: Omit<CorpusCase, 'cls' | 'name'>) => cases.push({ cls, name, ...c });

  // ------------------------------------------------------------------ billion laughs
  for (const levels of [3, 4, 5, 6, 7, 9]) {
    for (const width of [5, 10, 20]) {
      const lines = [`a0: &a0 [${Array(width).fill('lol').join(', ')}]`];
      for (let i = 1; i < levels; i++) lines.push(`a${i}: &a${i} [${Array(width).fill(`*a${i - 1}`).join(', ')}]`);
      add('billion laughs', `${levels} levels × ${width}`, { recipe: `${lines.join('\n')}\n${M(`    output: *a${levels - 1}\n`)}` });
    }
  }
  for (const levels of [4, 8]) {
    const lines = ['x0: &x0 {k: v, j: w}'];
    for (let i = 1; i < levels; i++) lines.push(`x${i}: &x${i} {${Array.from({ length: 10 }, (_, k) => `k${k}: *x${i - 1}`).join(', ')}}`);
    add('billion laughs', `mapping aliases, ${levels} levels`, { recipe: `${lines.join('\n')}\n${M(`    quantize: *x${levels - 1}\n`)}` });
  }
  add('billion laughs', 'block-style anchors', {
    recipe: `a: &a\n  - [x, x, x, x, x, x, x, x]\nb: &b\n${Array(10).fill('  - *a').join('\n')}\nc: &c\n${Array(10).fill('  - *b').join('\n')}\nd: &d\n${Array(10).fill('  - *c').join('\n')}\ne: &e\n${Array(10).fill('  - *d').join('\n')}\n${M('    output: *e\n')}`,
  });
  add('billion laughs', 'alias as model block', { recipe: `base: &b {source: fmnist.onnx}\nmodels:\n${Array.from({ length: 150 }, (_, i) => `  m${i}: *b`).join('\n')}\n` });

  // ------------------------------------------------------------------ deep nesting
  for (const depth of [65, 100, 1000, 20000, 200000]) {
    add('deep nesting', `flow sequence ${depth}`, { recipe: `models: ${'['.repeat(depth)}${']'.repeat(depth)}\n` });
    add('deep nesting', `flow mapping ${depth}`, { recipe: `models: ${'{a: '.repeat(depth)}1${'}'.repeat(depth)}\n` });
    if (depth <= 20000) add('deep nesting', `block mapping ${depth}`, { recipe: `models:\n${Array.from({ length: depth }, (_, i) => ' '.repeat(i + 2) + `k${i}:`).join('\n')}\n` });
    if (depth <= 20000) add('deep nesting', `block sequence ${depth}`, { recipe: `models:\n  m:\n    source: fmnist.onnx\n    output:\n${Array.from({ length: depth }, (_, i) => ' '.repeat(i + 6) + '-').join('\n')} x\n` });
  }
  add('deep nesting', 'nested quantize layers', { recipe: M(`    quantize: { dtype: int8, layers: ${'['.repeat(300)}${']'.repeat(300)} }\n`) });
  add('deep nesting', 'nested shapes', { recipe: M(`    calibration: { data: random, shapes: ${'{b: '.repeat(200)}1${'}'.repeat(200)} }\n`) });

  // ------------------------------------------------------------------ many keys / entries / builds
  for (const n of [1001, 5000, 20000, 100000]) {
    add('many keys', `${n} unknown keys in a model`, { recipe: M(Array.from({ length: n }, (_, i) => `    k${i}: 1`).join('\n') + '\n') });
    add('many keys', `${n} models`, { recipe: `defaults:\n  device: cpu\nmodels:\n${Array.from({ length: n }, (_, i) => `  m${i}: {source: fmnist.onnx}`).join('\n')}\n` });
    add('many keys', `${n} list entries`, { recipe: M(`    externalDataDirs: [${Array(n).fill('a').join(', ')}]\n`) });
    add('many keys', `${n} variants`, { recipe: M(`    variants:\n${Array.from({ length: n }, (_, i) => `      v${i}: {}`).join('\n')}\n`) });
  }
  add('many keys', '1M keys (one flow mapping, 10 MB)', { recipe: `models: {${Array.from({ length: 1_000_000 }, (_, i) => `k${i}: 1`).join(', ')}}\n` });
  add('many keys', '1M keys (block, 11 MB)', { recipe: `models:\n${Array.from({ length: 1_000_000 }, (_, i) => `  k${i}: 1`).join('\n')}\n` });
  add('many keys', '1000 models × 3 variants', { recipe: `models:\n${Array.from({ length: 1000 }, (_, i) => `  m${i}: {source: fmnist.onnx, variants: {a: {}, b: {}, c: {}}}`).join('\n')}\n` });
  add('many keys', 'duplicate keys', { recipe: `models:\n  m:\n    source: fmnist.onnx\n  m:\n    source: fmnist.onnx\n` });
  add('many keys', '50 k-character key', { recipe: `models:\n  ${'k'.repeat(50_000)}:\n    source: fmnist.onnx\n` });
  add('many keys', '10 MB scalar', { recipe: M(`    output: ${'x'.repeat(10 << 20)}.onnx\n`) });

  // ------------------------------------------------------------------ huge samples / runs / steps
  const numbers = ['1000000000', '1e12', '1e308', '.inf', '-1', '0', '1.5', '-.inf', '.nan', '"1e9"', '0x7fffffffffffffff'];
  for (const v of numbers) {
    // runs: 0 is valid (no timed runs); samples: 0 is not.
    if (v !== '0') add('huge samples/runs', `evaluate.runs ${v}`, { recipe: M(`    evaluate: { data: random, runs: ${v} }\n`) });
    add('huge samples/runs', `calibration.samples ${v}`, { recipe: M(`    calibration: { data: random, samples: ${v} }\n    quantize: { dtype: int8, activations: uint8 }\n`) });
    add('huge samples/runs', `evaluate.samples ${v}`, { recipe: M(`    evaluate: { data: random, samples: ${v} }\n`) });
    add('huge samples/runs', `distill.steps ${v}`, { recipe: M(`    distill: { data: random, steps: ${v} }\n`) });
  }
  for (const v of ['1000000000', '1e12']) add('huge samples/runs', `distill.epochs ${v}`, { recipe: M(`    distill: { data: random, epochs: ${v} }\n`) });

  // ------------------------------------------------------------------ random data shapes
  for (const shape of ['-1', '0', '2147483648', '1e12', '1099511627776', '"x"', '1.5']) {
    add('bad shapes', `random shapes batch ${shape}`, { recipe: M(`    evaluate: { data: random, shapes: { batch: ${shape} } }\n`) });
  }

  // ------------------------------------------------------------------ data modules (user code)
  // (Samples holding NaN are not here: values are the user's, and the build warns about NaN outputs.)
  const modules: [string, string][] = [
    ['throw null', 'export default function () { throw null; }'],
    ['throw undefined', 'export default function () { throw undefined; }'],
    ['throw a string', 'export default function () { throw "nope"; }'],
    ['throw a number', 'export default function () { throw 42; }'],
    ['throw a symbol', 'export default function () { throw Symbol("s"); }'],
    ['throw an object whose message getter throws', 'export default function () { throw { get message() { throw new Error("getter"); } }; }'],
    ['throw a Proxy that throws on every access', 'export default function () { throw new Proxy({}, { get() { throw new Error("proxy"); } }); }'],
    ['reject null', 'export default async function () { throw null; }'],
    ['reject with an object whose toString throws', 'export default () => Promise.reject({ toString() { throw new Error("x"); } });'],
    ['top-level throw null', 'throw null;'],
    ['top-level await that rejects', 'await Promise.reject(new Error("top"));'],
    ['syntax error', 'export default function ( {'],
    ['imports a missing package', 'import "no-such-package-xyz"; export default [];'],
    ['never settles (nothing pending)', 'export default function () { return new Promise(() => {}); }'],
    ['never settles, top-level await', 'await new Promise(() => {}); export default [];'],
    ['process.exit(0) at import', 'process.exit(0);'],
    ['process.exit(0) in the function', 'export default function () { process.exit(0); }'],
    ['process.exit(1)', 'export default function () { process.exit(1); }'],
    ['process.exit(70)', 'export default function () { process.exit(70); }'],
    ['process.exitCode = 0 then never settles', 'process.exitCode = 0; export default () => new Promise(() => {});'],
    ['an unhandled rejection', 'Promise.reject(new Error("stray")); export default [];'],
    ['an unhandled rejection of null', 'Promise.reject(null); export default [];'],
    ['an uncaught exception in a timer', 'setTimeout(() => { throw new Error("timer"); }, 0); export default () => new Promise((r) => setTimeout(() => r([]), 200));'],
    ['infinite sync generator', 'export default function* () { for (;;) yield { inputs: { image: new Float32Array(784) } }; }'],
    ['infinite async generator', 'export default async function* () { for (;;) yield { inputs: { image: new Float32Array(784) } }; }'],
    ['infinite iterator object', 'export default { [Symbol.iterator]() { return { next: () => ({ value: { inputs: { image: new Float32Array(784) } }, done: false }) }; } };'],
    ['iterator next throws null', 'export default { [Symbol.iterator]() { return { next() { throw null; } }; } };'],
    ['async iterator rejects', 'export default { [Symbol.asyncIterator]() { return { next: () => Promise.reject(new Error("async iter")) }; } };'],
    ['a getter on the sample throws', 'export default [{ get inputs() { throw new Error("boom"); } }];'],
    ['a getter on an input throws', 'export default [{ inputs: { get image() { throw null; } } }];'],
    ['returns a number', 'export default function () { return 42; }'],
    ['returns null', 'export default function () { return null; }'],
    ['default export is a string', 'export default "samples";'],
    ['no default export', 'export const x = 1;'],
    ['samples of the wrong shape', 'export default [{ inputs: { image: new Float32Array(3) } }];'],
    ['samples of the wrong type', 'export default [{ inputs: { image: "pixels" } }];'],
    ['a sample that is null', 'export default [null];'],
    ['an input named __proto__', 'export default [JSON.parse(\'{"inputs": {"__proto__": [1]}}\')];'],
    ['stack overflow', 'const f = () => f(); export default function () { return f(); }'],
    ['huge typed array', 'export default function () { return [{ inputs: { image: new Float32Array(2 ** 28) } }]; }'],
    ['yields slowly after one sample', 'export default async function* () { yield { inputs: { image: new Float32Array(784) } }; await new Promise(() => {}); }'],
  ];
  for (const [name, code] of modules) {
    add('data modules', `evaluate: ${name}`, { recipe: M('    evaluate: { data: data.mjs }\n'), files: { 'data.mjs': code } });
  }
  for (const [name, code] of modules.slice(0, 16)) {
    add('data modules', `calibration: ${name}`, { recipe: M('    calibration: { data: data.mjs }\n    quantize: { dtype: int8, activations: uint8 }\n'), files: { 'data.mjs': code } });
  }
  add('data modules', 'a never-settling promise with a timer pending (bounded by DATA_MODULE_MS)', {
    recipe: M('    evaluate: { data: data.mjs }\n'),
    files: { 'data.mjs': 'setInterval(() => {}, 1000); export default () => new Promise(() => {});' },
    env: { ONNX_COMPRESS_LIMIT_DATA_MODULE_MS: '2000' },
  });

  // ------------------------------------------------------------------ npz / npy
  const E = (data: Uint8Array, extra: Partial<{ method: 0 | 8; declared: number; crc: number }> = {}) => ({ name: 'image.npy', data, ...extra });
  const goodNpy = npy(IMAGE_HEADER('(1, 1, 28, 28)'), f32(784));
  const npzCases: [string, Uint8Array][] = [
    ['256 MB zero-filled entry (bomb)', zip([E(new Uint8Array(256 << 20))])],
    ['64 MB zero-filled entry (ratio)', zip([E(new Uint8Array(64 << 20))])],
    ['declared 4 GB, small body', zip([E(goodNpy, { declared: 0xffffffff })])],
    ['declared smaller than inflated', zip([E(new Uint8Array(1 << 20), { declared: 1000 })])],
    ['declared larger than inflated', zip([E(goodNpy, { declared: goodNpy.length + 5000 })])],
    ['stored entry, declared size lies', zip([E(goodNpy, { method: 0, declared: goodNpy.length * 10 })])],
    ['unknown compression method', zip([{ name: 'image.npy', data: goodNpy, method: 14 as 0 }])],
    ['truncated archive', zip([E(goodNpy)]).subarray(0, 100)],
    ['only an end record', Buffer.concat([Buffer.from('PK\u0005\u0006'), Buffer.alloc(18)])],
    ['end record points past the file', (() => { const z = Buffer.from(zip([E(goodNpy)])); z.writeUInt32LE(0x7fffffff, z.length - 6); return z; })()],
    ['central directory count lies', (() => { const z = Buffer.from(zip([E(goodNpy)])); z.writeUInt16LE(65535, z.length - 12); z.writeUInt16LE(65535, z.length - 14); return z; })()],
    ['not a zip', Buffer.from('this is not a zip file at all')],
    ['empty file', new Uint8Array(0)],
    ['corrupt deflate stream', (() => { const z = Buffer.from(zip([E(npy(IMAGE_HEADER('(1, 1, 28, 28)'), Uint8Array.from({ length: 3136 }, (_, i) => i * 7)))])); for (let i = 45; i < 200; i++) z[i] ^= 0x5a; return z; })()],
    ['entry is not npy', zip([E(Buffer.from('hello world'))])],
    ['entry name with NUL', zip([{ name: 'ima\u0000ge.npy', data: goodNpy }])],
    ['entry name ../escape', zip([{ name: '../image.npy', data: goodNpy }])],
    ['10,000 entries', zip(Array.from({ length: 10000 }, (_, i) => ({ name: `e${i}.npy`, data: new Uint8Array(1) })))],
    ['duplicate entries', zip([E(goodNpy), E(goodNpy)])],
    ['npy shape far larger than its data', zip([E(npy(IMAGE_HEADER('(100000, 1, 28, 28)'), f32(784)))])],
    ['npy negative shape', zip([E(npy(IMAGE_HEADER('(-1, 1, 28, 28)'), f32(784)))])],
    ['npy huge shape (overflow)', zip([E(npy(IMAGE_HEADER('(9223372036854775807, 4611686018427387904)'), f32(784)))])],
  ];
  for (const [name, bytes] of npzCases) add('npz bombs / malformed npz', name, { recipe: M('    evaluate: { data: data.npz }\n'), files: { 'data.npz': bytes } });
  const npyCases: [string, Uint8Array][] = [
    ['bad magic', Buffer.from('\x92NUMPY\x01\x00\x10\x00{}', 'latin1')],
    ['truncated header', Buffer.from('\x93NUMPY\x01\x00\x10\x00{"descr": "<f4"', 'latin1')],
    ['header length past the file', (() => { const b = Buffer.from(goodNpy); b.writeUInt16LE(65535, 8); return b; })()],
    ['version 3 header length 4 GB', (() => { const b = Buffer.from(npy(IMAGE_HEADER('(1, 1, 28, 28)'), f32(784), 2)); b[6] = 3; b.writeUInt32LE(0xffffffff, 8); return b; })()],
    ['unsupported dtype (object)', npy(IMAGE_HEADER('(1, 1, 28, 28)', '|O'), f32(784))],
    ['unsupported dtype (complex)', npy(IMAGE_HEADER('(1, 1, 28, 28)', '<c8'), f32(784 * 2))],
    ['big-endian float', npy(IMAGE_HEADER('(1, 1, 28, 28)', '>f4'), f32(784))],
    ['fortran order', npy(IMAGE_HEADER('(1, 1, 28, 28)', '<f4', 'True'), f32(784))],
    ['shape larger than data', npy(IMAGE_HEADER('(1000, 1, 28, 28)'), f32(784))],
    ['shape negative', npy(IMAGE_HEADER('(-5, 1, 28, 28)'), f32(784))],
    ['shape with 2^63', npy(IMAGE_HEADER('(9223372036854775808, 1)'), f32(784))],
    ['shape not a tuple', npy(`{'descr': '<f4', 'fortran_order': False, 'shape': 'abc', }`, f32(784))],
    ['header is code', npy(`__import__('os').system('echo pwned')`, f32(784))],
    ['header nested 10,000 deep', npy(`{'descr': '<f4', 'fortran_order': False, 'shape': ${'('.repeat(10000)}1${',)'.repeat(10000)}, }`, f32(784))],
    ['wrong shape for the input', npy(IMAGE_HEADER('(1, 3, 3)'), f32(9))],
    ['empty file', new Uint8Array(0)],
  ];
  for (const [name, bytes] of npyCases) add('malformed npy', name, { recipe: M('    evaluate: { data: data.npy }\n'), files: { 'data.npy': bytes } });

  // ------------------------------------------------------------------ JSONL
  const jsonl: [string, string][] = [
    ['nested 10,000 deep', `{"inputs": {"image": ${'['.repeat(10000)}1${']'.repeat(10000)}}}\n`],
    ['nested 100,000 deep', `{"inputs": {"image": ${'['.repeat(100000)}1${']'.repeat(100000)}}}\n`],
    ['objects nested 50,000 deep', `{"inputs": {"image": ${'{"a":'.repeat(50000)}1${'}'.repeat(50000)}}}\n`],
    ['nested 65 deep', `{"inputs": {"image": ${'['.repeat(65)}1${']'.repeat(65)}}}\n`],
    ['invalid JSON on line 3', goodLine() + goodLine() + '{"inputs": {"image": [1, 2,}\n'],
    ['truncated last line', goodLine() + '{"inputs": {"image": [[['],
    ['a line that is an array', '[1, 2, 3]\n'],
    ['a line that is null', 'null\n'],
    ['no inputs key', '{"input": {"image": [1]}}\n'],
    ['inputs is a string', '{"inputs": "image"}\n'],
    ['unknown input name', '{"inputs": {"picture": [1]}}\n'],
    ['wrong shape', '{"inputs": {"image": [1, 2, 3]}}\n'],
    ['ragged arrays', `{"inputs": {"image": [[[[1, 2], [3]]]]}}\n`],
    ['strings in the array', `{"inputs": {"image": [[["a", "b"]]]}}\n`],
    ['NaN token', '{"inputs": {"image": NaN}}\n'],
    ['__proto__ input', '{"inputs": {"__proto__": {"image": [1]}}}\n'],
    ['a label that is an object', `{"inputs": {"image": ${image()}}, "label": {"class": 3}}\n`],
    ['one 20 MB line', `{"inputs": {"image": [${Array(4_000_000).fill('0.5').join(',')}]}}\n`],
    ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d, 0x0a]).toString('latin1')],
    ['only blank lines', '\n\n\n'],
    ['empty file', ''],
    ['BOM then garbage', '\ufeff{garbage\n'],
    ['labels nested 10,000 deep', `{"inputs": {"image": ${image()}}, "label": ${'['.repeat(10000)}1${']'.repeat(10000)}}\n`],
    ['10,000 keys in inputs', `{"inputs": {${Array.from({ length: 10000 }, (_, i) => `"k${i}": 1`).join(',')}}}\n`],
  ];
  for (const [name, text] of jsonl) add('JSONL', name, { recipe: M('    evaluate: { data: data.jsonl }\n'), files: { 'data.jsonl': name === 'invalid UTF-8' ? Buffer.from(text, 'latin1') : text } });

  // ------------------------------------------------------------------ FIFOs and special files
  const fifoBuild: [string, string, (d: string) => void][] = [
    ['source model is a FIFO', M('', 'm', 'm.onnx'), (d) => mkfifo(path.join(d, 'm.onnx'))],
    ['evaluate data .jsonl is a FIFO', M('    evaluate: { data: data.jsonl }\n'), (d) => mkfifo(path.join(d, 'data.jsonl'))],
    ['evaluate data .npz is a FIFO', M('    evaluate: { data: data.npz }\n'), (d) => mkfifo(path.join(d, 'data.npz'))],
    ['evaluate data .npy is a FIFO', M('    evaluate: { data: data.npy }\n'), (d) => mkfifo(path.join(d, 'data.npy'))],
    ['calibration data .jsonl is a FIFO', M('    calibration: { data: data.jsonl }\n    quantize: { dtype: int8, activations: uint8 }\n'), (d) => mkfifo(path.join(d, 'data.jsonl'))],
    ['a FIFO inside a data folder', M('    evaluate: { data: d }\n'), (d) => { mkdirSync(path.join(d, 'd')); mkfifo(path.join(d, 'd', 'image.npy')); }],
    ['distill teacher is a FIFO', M('    distill: { data: random, steps: 1, teacher: t.onnx }\n'), (d) => mkfifo(path.join(d, 't.onnx'))],
    ['source is /dev/zero', M('', 'm', '/dev/zero'), () => {}],
    ['source is /dev/urandom', M('', 'm', '/dev/urandom'), () => {}],
    ['evaluate data is /dev/zero.npy symlink', M('    evaluate: { data: z.npy }\n'), (d) => symlinkSync('/dev/zero', path.join(d, 'z.npy'))],
    ['source is a folder', M('', 'm', 'm.onnx'), (d) => mkdirSync(path.join(d, 'm.onnx'))],
    ['source is a symlink loop', M('', 'm', 'm.onnx'), (d) => { symlinkSync('n.onnx', path.join(d, 'm.onnx')); symlinkSync('m.onnx', path.join(d, 'n.onnx')); }],
    ['source is a dangling symlink', M('', 'm', 'm.onnx'), (d) => symlinkSync('gone.onnx', path.join(d, 'm.onnx'))],
    ['data is a symlink loop', M('    evaluate: { data: data.jsonl }\n'), (d) => { symlinkSync('b.jsonl', path.join(d, 'data.jsonl')); symlinkSync('data.jsonl', path.join(d, 'b.jsonl')); }],
  ];
  for (const [name, recipe, setup] of fifoBuild) add('FIFOs and special files', `build: ${name}`, { recipe, setup });
  const ext = externalModel('weights.bin');
  const extFifo = (d: string) => mkfifo(path.join(d, 'weights.bin'));
  add('FIFOs and special files', 'build: external data is a FIFO', { recipe: M('', 'e', 'e.onnx'), files: { 'e.onnx': ext.model }, setup: extFifo });
  add('FIFOs and special files', 'inspect: model is a FIFO', { args: ['inspect', 'm.onnx'], setup: (d) => mkfifo(path.join(d, 'm.onnx')) });
  // (inspect with external data that is a FIFO is not here: inspect does not read tensor data, and ends at once with exit 0.)
  add('FIFOs and special files', 'repack: model is a FIFO', { args: ['repack', 'm.onnx', 'out.onnx'], setup: (d) => mkfifo(path.join(d, 'm.onnx')) });
  add('FIFOs and special files', 'repack --inline: external data is a FIFO', { args: ['repack', 'e.onnx', 'out.onnx', '--inline'], files: { 'e.onnx': ext.model }, setup: extFifo });
  add('FIFOs and special files', 'validate: recipe is a FIFO', { args: ['validate', 'r.yaml'], setup: (d) => mkfifo(path.join(d, 'r.yaml')) });
  add('FIFOs and special files', 'build: recipe is a FIFO', { args: ['build', 'r.yaml', '--out', 'dist', '--no-cache'], setup: (d) => mkfifo(path.join(d, 'r.yaml')) });
  add('FIFOs and special files', 'build: recipe is a folder', { args: ['build', 'r.yaml', '--out', 'dist', '--no-cache'], setup: (d) => mkdirSync(path.join(d, 'r.yaml')) });
  add('FIFOs and special files', 'build: recipe is /dev/zero', { args: ['build', '/dev/zero', '--out', 'dist', '--no-cache'] });

  // ------------------------------------------------------------------ symlink escapes (external data and paths)
  const secretOf = (n: number) => Buffer.from(SECRET.repeat(Math.ceil(n / SECRET.length)).slice(0, n));
  const escapes: [string, string, (d: string, o: string) => void][] = [
    ['weights.bin is a symlink to a file outside', 'weights.bin', (d, o) => { writeFileSync(path.join(o, 'secret.bin'), secretOf(ext.data.length)); symlinkSync(path.join(o, 'secret.bin'), path.join(d, 'weights.bin')); }],
    ['weights.bin is a relative symlink ../', 'weights.bin', (d, o) => { writeFileSync(path.join(o, 'secret.bin'), secretOf(ext.data.length)); symlinkSync(path.relative(d, path.join(o, 'secret.bin')), path.join(d, 'weights.bin')); }],
    ['a symlinked folder holds weights.bin', 'w/weights.bin', (d, o) => { writeFileSync(path.join(o, 'weights.bin'), secretOf(ext.data.length)); symlinkSync(o, path.join(d, 'w')); }],
    ['a chain of two symlinks', 'weights.bin', (d, o) => { writeFileSync(path.join(o, 'secret.bin'), secretOf(ext.data.length)); symlinkSync(path.join(o, 'secret.bin'), path.join(d, 'hop.bin')); symlinkSync('hop.bin', path.join(d, 'weights.bin')); }],
    ['a symlink to /etc/passwd', 'weights.bin', (d) => symlinkSync('/etc/passwd', path.join(d, 'weights.bin'))],
    ['a symlink to /proc/self/environ', 'weights.bin', (d) => symlinkSync('/proc/self/environ', path.join(d, 'weights.bin'))],
  ];
  for (const [name, location, setup] of escapes) {
    const e = externalModel(location);
    add('symlink escapes', `build: ${name}`, { recipe: M('', 'e', 'e.onnx'), files: { 'e.onnx': e.model }, setup });
    add('symlink escapes', `repack --inline: ${name}`, { args: ['repack', 'e.onnx', 'out.onnx', '--inline'], files: { 'e.onnx': e.model }, setup });
    add('symlink escapes', `inspect: ${name}`, { args: ['inspect', 'e.onnx'], files: { 'e.onnx': e.model }, setup });
  }
  for (const location of ['../secret.bin', '/etc/passwd', 'sub/../../secret.bin', '..\\secret.bin', 'C:/secret.bin', 'w/../../secret.bin', '%2e%2e/secret.bin', 'weights.bin\u0000.png', '']) {
    const e = externalModel(location);
    add('symlink escapes', `build: location ${JSON.stringify(location)}`, { recipe: M('', 'e', 'e.onnx'), files: { 'e.onnx': e.model }, setup: (_d, o) => writeFileSync(path.join(o, 'secret.bin'), secretOf(e.data.length)) });
  }
  add('symlink escapes', 'externalDataDirs outside and absolute', { recipe: M('    externalDataDirs: [/etc]\n', 'e', 'e.onnx'), files: { 'e.onnx': externalModel('weights.bin').model }, setup: (d) => symlinkSync('/etc/passwd', path.join(d, 'weights.bin')) });

  // ------------------------------------------------------------------ names: NUL, control characters, length
  const names = ['a\\0b.onnx', 'a\\x01b.onnx', 'a\\nb.onnx', 'a\\rb.onnx', 'a\\tb.onnx', '\\x1b[31mred.onnx', `${'x'.repeat(300)}.onnx`, `${'d/'.repeat(600)}m.onnx`, `${'x'.repeat(5000)}.onnx`, '', '.', '..', '/', '/tmp/abs.onnx', '../up.onnx', 'a/../../up.onnx', 'C:\\\\x.onnx', 'con.onnx/..'];
  for (const n of names) add('NUL and long names', `output ${JSON.stringify(n).slice(0, 40)}`, { recipe: M(`    output: "${n}"\n`) });
  for (const n of ['a\\0b', `${'m'.repeat(5000)}`, 'a/b', '../x', 'a\\x00']) add('NUL and long names', `model id ${JSON.stringify(n).slice(0, 30)}`, { recipe: `defaults:\n  device: cpu\nmodels:\n  "${n}":\n    source: fmnist.onnx\n` });
  for (const n of ['fm\\0nist.onnx', 'fmnist.onnx\\0.txt', `${'s'.repeat(5000)}.onnx`]) add('NUL and long names', `source ${JSON.stringify(n).slice(0, 30)}`, { recipe: M('', 'm', `"${n}"`) });
  add('NUL and long names', 'variant name with NUL', { recipe: M('    variants:\n      "a\\0b": {}\n') });
  add('NUL and long names', 'data path with NUL', { recipe: M('    evaluate: { data: "d\\0.jsonl" }\n') });

  // ------------------------------------------------------------------ outputs over inputs and each other
  const over: [string, string, string[], Record<string, string>?][] = [
    ['output = the source, --out .', M('    output: fmnist.onnx\n'), ['--out', '.']],
    ['default output name = the source, --out .', M(), ['--out', '.']],
    ['output ../fmnist.onnx from dist', M('    output: ../fmnist.onnx\n'), ['--out', 'dist']],
    ['output = the recipe', M('    output: compress.yaml\n'), ['--out', '.']],
    ['output = the data file', M('    output: data.jsonl\n    evaluate: { data: data.jsonl }\n'), ['--out', '.'], { 'data.jsonl': goodLine() }],
    ['output inside the data folder', M('    output: d/x.onnx\n    evaluate: { data: d }\n'), ['--out', '.'], { 'd/image.npy': '' }],
    ['output = the teacher', M('    output: t.onnx\n    distill: { data: random, steps: 1, teacher: t.onnx }\n'), ['--out', '.']],
    ['output = another model\'s manifest', `${M('    output: other.manifest.json\n')}  other:\n    source: fmnist.onnx\n`, ['--out', 'dist']],
    ['two models, one output', `${M('    output: same.onnx\n')}  b:\n    source: fmnist.onnx\n    output: same.onnx\n`, ['--out', 'dist']],
    ['output = onnx-compress.json', M('    output: onnx-compress.json\n'), ['--out', 'dist']],
    ['output = onnx-compress-report.html', M('    output: onnx-compress-report.html\n'), ['--out', 'dist']],
    ['output = its own manifest', M('    output: fmnist.manifest.json\n'), ['--out', 'dist']],
    ['--out is the source file', M(), ['--out', 'fmnist.onnx']],
    ['--report-dir = folder of the source, manifest name = source', M('', 'fmnist', 'fmnist.manifest.json'), ['--out', 'dist', '--report-dir', '.']],
    ['variant output = the model output', M('    variants:\n      v: { output: fmnist.onnx }\n'), ['--out', 'dist']],
    ['output through a symlinked folder onto the source', M('    output: link/fmnist.onnx\n'), ['--out', '.']],
  ];
  for (const [name, recipe, args, files] of over) {
    add('outputs over sources/manifests', name, {
      recipe,
      args: ['build', ...args, '--no-cache'],
      files: { ...(files ?? {}), ...(name.includes('teacher') ? { 't.onnx': readFileSync(FMNIST) } : {}), ...(name.includes('fmnist.manifest.json\'') ? {} : {}) },
      setup: (d) => {
        if (name.includes('symlinked folder')) symlinkSync('.', path.join(d, 'link'));
        if (name.includes('manifest name = source')) writeFileSync(path.join(d, 'fmnist.manifest.json'), readFileSync(FMNIST));
      },
    });
  }

  // ------------------------------------------------------------------ broken models and recipes
  const fm = readFileSync(FMNIST);
  const models: [string, Uint8Array][] = [
    ['empty .onnx', new Uint8Array(0)],
    ['one byte', Uint8Array.of(0x08)],
    ['truncated in half', fm.subarray(0, fm.length >> 1)],
    ['truncated by one byte', fm.subarray(0, fm.length - 1)],
    ['text file', Buffer.from('not a model\n')],
    ['a zip file', zip([{ name: 'x', data: new Uint8Array(10) }])],
    ['only an ir_version', Uint8Array.of(0x08, 0x07)],
    ['a varint that never ends', new Uint8Array(64).fill(0xff)],
    ['length prefix of 2 GB', Uint8Array.of(0x3a, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00)],
    ['graph nested in itself 10,000 deep', (() => { let b = Buffer.alloc(0); for (let i = 0; i < 10000; i++) b = Buffer.concat([Buffer.from([0x3a]), varint(b.length), b]); return b; })()],
  ];
  for (const [name, bytes] of models) add('broken models', name, { recipe: M('', 'm', 'm.onnx'), files: { 'm.onnx': bytes }, model: false });
  const recipes: [string, string | Uint8Array][] = [
    ['empty recipe', ''],
    ['a tab-indented recipe', 'models:\n\tm:\n\t\tsource: fmnist.onnx\n'],
    ['invalid UTF-8', Buffer.from([0x6d, 0x6f, 0x64, 0x65, 0x6c, 0x73, 0x3a, 0x20, 0xff, 0xfe, 0x0a])],
    ['a NUL byte', 'models:\n  m:\n    source: fmnist\u0000.onnx\n'],
    ['UTF-16 BOM', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('models: {}\n', 'utf16le')])],
    ['two documents', 'models: {}\n---\nmodels: {}\n'],
    ['a YAML tag !!js/function', 'models: !!js/function "function () {}"\n'],
    ['a custom tag', 'models: !evil {}\n'],
    ['a merge key loop', 'a: &a\n  <<: *a\nmodels: {}\n'],
    ['an undefined alias', 'models: *nothing\n'],
    ['models is a list', 'models: [a, b]\n'],
    ['models is null', 'models:\n'],
    ['unknown step', M('    squeeze: { hard: true }\n')],
    ['quantize dtype int3', M('    quantize: { dtype: int3 }\n')],
    ['source is a number', M('', 'm', '42')],
    ['source missing', M('', 'm', 'nope.onnx')],
    ['source is a URL', M('', 'm', 'https://example.com/m.onnx')],
    ['a 300 kB comment', `# ${'x'.repeat(300_000)}\nmodels: {}\n`],
    ['a binary file as recipe', fm.subarray(0, 4096)],
    // (Models named __proto__ and constructor are not here: they are valid ids, built and written as such.)
  ];
  for (const [name, text] of recipes) add('bad recipes', name, { recipe: typeof text === 'string' ? text : undefined, files: typeof text === 'string' ? {} : { 'compress.yaml': text } });
  return cases;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

export interface CorpusOutcome {
  cls: string;
  name: string;
  status: number | null;
  signal: string | null;
  ms: number;
  cpuMs?: number;
  rssBytes?: number;
  message: string;
  finding?: string;
}

/** Hashes of every regular file under `dir` (symlinks and special files left out). */
function snapshot(dir: string, base = dir, out = new Map<string, string>()): Map<string, string> {
  for (const name of readdirSync(dir)) {
    const f = path.join(dir, name);
    const st = lstatSync(f);
    if (st.isDirectory()) snapshot(f, base, out);
    else if (st.isFile()) out.set(path.relative(base, f), createHash('sha256').update(readFileSync(f)).digest('hex'));
  }
  return out;
}

/** Regular files under `dir` written by the run (not in `before`) that hold the secret. */
function leaks(dir: string, before: Map<string, string>): string[] {
  const found: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const f = path.join(d, name);
      const st = lstatSync(f);
      if (st.isDirectory()) walk(f);
      else if (st.isFile() && !before.has(path.relative(dir, f)) && st.size < 64 << 20 && readFileSync(f).includes(SECRET)) found.push(path.relative(dir, f));
    }
  };
  walk(dir);
  return found;
}

export function runCorpusCase(c: CorpusCase, cliFile: string, limitMs: number, rssBytes: number): CorpusOutcome {
  const cli = path.resolve(cliFile); // the command runs in the case's folder
  const root = mkdtempSync(path.join(tmpdir(), 'corpus-'));
  const dir = path.join(root, 'project');
  const outside = path.join(root, 'outside');
  mkdirSync(dir);
  mkdirSync(outside);
  try {
    if (c.model !== false) copyFileSync(FMNIST, path.join(dir, 'fmnist.onnx'));
    if (c.recipe !== undefined) writeFileSync(path.join(dir, 'compress.yaml'), c.recipe);
    for (const [f, data] of Object.entries(c.files ?? {})) {
      mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      writeFileSync(path.join(dir, f), data);
    }
    c.setup?.(dir, outside);
    const before = snapshot(dir);
    const outsideBefore = snapshot(outside);
    const args = c.args ?? ['build', '--out', 'dist', '--no-cache'];
    const timed = existsSync('/usr/bin/time');
    // A generous kill time (60 s, at least 4× the limit): a slow case is measured, not only cut off.
    const t0 = performance.now();
    const killAt = Math.max(60_000, limitMs * 4);
    const [cmd, argv] = killGroupAfter(killAt, timed ? '/usr/bin/time' : process.execPath, timed ? ['-f', '\ncorpus-time=%M %U %S', process.execPath, cli, ...args] : [cli, ...args]);
    const p = spawnSync(cmd, argv, {
      cwd: dir,
      encoding: 'utf8',
      timeout: killAt + 5000, // a backstop: timeout(1) ends the group at killAt
      maxBuffer: 64 << 20,
      env: { ...process.env, CI: '1', ...c.env },
    });
    const ms = Math.round(performance.now() - t0);
    let stderr = p.stderr ?? '';
    const o: CorpusOutcome = { cls: c.cls, name: c.name, status: p.status, signal: p.signal, ms, message: '' };
    const t = /\ncorpus-time=(\d+) ([\d.]+) ([\d.]+)\s*$/.exec(stderr);
    if (t) {
      o.rssBytes = Number(t[1]) * 1024;
      o.cpuMs = Math.round((Number(t[2]) + Number(t[3])) * 1000);
      stderr = stderr.slice(0, t.index);
    }
    const sig = /Command terminated by signal (\d+)/.exec(stderr);
    if (sig) [o.status, o.signal] = [null, `signal ${sig[1]}`];
    stderr = stderr.replace(/Command exited with non-zero status \d+\n?/, '');
    o.message = stderr.split('\n').find((l) => l.startsWith('onnx-compress')) ?? '';
    const changed = [...before].filter(([f, h]) => !existsSync(path.join(dir, f)) || !statSync(path.join(dir, f)).isFile() || snapshot(dir).get(f) !== h).map(([f]) => f);
    const changedOutside = [...outsideBefore].filter(([f, h]) => snapshot(outside).get(f) !== h).map(([f]) => f);
    const leaked = leaks(dir, before);
    o.finding =
      (o.signal || o.status === 137 ? (ms >= killAt ? `timeout (${o.signal ?? 'SIGKILL'})` : `killed by ${o.signal ?? 'SIGKILL'}`) : undefined) ??
      (o.status === 0 ? 'exit 0 on bad input' : undefined) ??
      (/internal error/.test(stderr) ? 'internal error' : undefined) ??
      (/\n\s+at .+:\d+:\d+\)?\n/.test(stderr) ? 'stack trace without --debug' : undefined) ??
      classifyMessage(o.status ?? 70, o.message) ??
      ((o.cpuMs ?? ms) > limitMs ? `slow: ${o.cpuMs} ms of CPU (${ms} ms wall)` : undefined) ??
      ((o.rssBytes ?? 0) > rssBytes ? `RSS ${Math.round((o.rssBytes ?? 0) / 2 ** 20)} MiB` : undefined) ??
      (changed.length ? `input files changed: ${changed.join(', ')}` : undefined) ??
      (changedOutside.length ? `files outside changed: ${changedOutside.join(', ')}` : undefined) ??
      (leaked.length ? `the secret leaked into ${leaked.join(', ')}` : undefined);
    if (!o.finding) delete o.finding;
    return o;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

export interface CorpusArgs {
  cli: string;
  /** Another CLI run on every case too (before → after figures). */
  compare?: string;
  limitMs: number;
  rssMb: number;
  out: string;
  only?: string;
}

export interface CorpusSummary {
  cases: number;
  findings: number;
  byClass: Record<string, ClassFigures & { before?: ClassFigures }>;
  maxMs: number;
  maxCpuMs: number;
  maxRssMiB: number;
  loadavg: { start: number[]; end: number[] };
  outcomes: CorpusOutcome[];
  /** With --compare: the other CLI's outcomes, case by case. */
  before?: CorpusOutcome[];
}

interface ClassFigures {
  cases: number;
  exit1: number;
  exit2: number;
  findings: number;
  maxMs: number;
  maxCpuMs: number;
  maxRssMiB: number;
  /** Wall time of all its cases. */
  totalMs: number;
}

function figures(outcomes: CorpusOutcome[]): Record<string, ClassFigures> {
  const byClass: Record<string, ClassFigures> = {};
  for (const o of outcomes) {
    const b = (byClass[o.cls] ??= { cases: 0, exit1: 0, exit2: 0, findings: 0, maxMs: 0, maxCpuMs: 0, maxRssMiB: 0, totalMs: 0 });
    b.cases++;
    if (o.status === 1) b.exit1++;
    if (o.status === 2) b.exit2++;
    if (o.finding) b.findings++;
    b.maxMs = Math.max(b.maxMs, o.ms);
    b.maxCpuMs = Math.max(b.maxCpuMs, o.cpuMs ?? 0);
    b.maxRssMiB = Math.max(b.maxRssMiB, Math.round((o.rssBytes ?? 0) / 2 ** 20));
    b.totalMs += o.ms;
  }
  return byClass;
}

export function runCorpus(a: CorpusArgs, log: (line: string) => void = console.log): CorpusSummary {
  const cli = path.resolve(a.cli);
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run \`npm run build\` first`);
  mkdirSync(a.out, { recursive: true });
  const start = loadavg().map((x) => Math.round(x * 100) / 100);
  const cases = corpusCases().filter((c) => !a.only || c.cls === a.only || c.name.includes(a.only));
  const outcomes: CorpusOutcome[] = [];
  const before: CorpusOutcome[] = [];
  const other = a.compare ? path.resolve(a.compare) : undefined;
  if (other && !existsSync(other)) throw new Error(`${other} is missing`);
  const timed = (c: CorpusCase, file: string) => {
    const o = runCorpusCase(c, file, a.limitMs, a.rssMb * 2 ** 20);
    // Past the time limit in wall time only: timed once more (the machine may be shared), the faster kept.
    if (o.finding || o.ms <= a.limitMs) return o;
    const again = runCorpusCase(c, file, a.limitMs, a.rssMb * 2 ** 20);
    return again.ms < o.ms ? again : o;
  };
  for (const [i, c] of cases.entries()) {
    // With --compare: the other CLI first on even cases, second on odd ones.
    if (other && i % 2 === 0) before.push(timed(c, other));
    const o = timed(c, cli);
    if (other && i % 2 === 1) before.push(timed(c, other));
    outcomes.push(o);
    if (o.finding) log(`#${i} ${c.cls} / ${c.name}: FINDING ${o.finding} (exit ${o.status ?? o.signal}, ${o.ms} ms) — ${o.message.slice(0, 300)}`);
  }
  const byClass: CorpusSummary['byClass'] = figures(outcomes);
  if (other) for (const [k, f] of Object.entries(figures(before))) byClass[k].before = f;
  const s: CorpusSummary = {
    cases: outcomes.length,
    findings: outcomes.filter((o) => o.finding).length,
    byClass,
    maxMs: Math.max(...outcomes.map((o) => o.ms)),
    maxCpuMs: Math.max(...outcomes.map((o) => o.cpuMs ?? 0)),
    maxRssMiB: Math.max(...outcomes.map((o) => Math.round((o.rssBytes ?? 0) / 2 ** 20))),
    loadavg: { start, end: loadavg().map((x) => Math.round(x * 100) / 100) },
    outcomes,
  };
  if (other) s.before = before;
  writeFileSync(path.join(a.out, 'corpus.json'), JSON.stringify(s, null, 2));
  const was = (b: ClassFigures | undefined, x: number) => (b ? `${x} → ` : '');
  log(`class | cases | exit 1 | exit 2 | findings | max wall ms | max CPU ms | max RSS MiB | total wall ms${other ? ` (${a.compare} → ${a.cli})` : ''}`);
  for (const [k, b] of Object.entries(byClass)) {
    const p = b.before;
    log(`${k} | ${b.cases} | ${b.exit1} | ${b.exit2} | ${b.findings} | ${was(p, p?.maxMs ?? 0)}${b.maxMs} | ${was(p, p?.maxCpuMs ?? 0)}${b.maxCpuMs} | ${was(p, p?.maxRssMiB ?? 0)}${b.maxRssMiB} | ${was(p, p?.totalMs ?? 0)}${b.totalMs}`);
  }
  const total = (os: CorpusOutcome[]) => os.reduce((t, o) => t + o.ms, 0);
  const then = other ? ` (${a.compare}: max ${Math.max(...before.map((o) => o.ms))} ms wall, ${Math.max(...before.map((o) => o.cpuMs ?? 0))} ms CPU, ${total(before)} ms in all)` : '';
  log(`${s.cases} cases, ${s.findings} findings; max ${s.maxMs} ms wall, ${s.maxCpuMs} ms CPU, ${s.maxRssMiB} MiB RSS, ${total(outcomes)} ms in all${then}; load ${start[0]} → ${s.loadavg.end[0]}; ${path.join(a.out, 'corpus.json')}`);
  return s;
}
