/**
 * Mutation fuzzing of the model decoder (seeded, so every failure reproduces).
 *
 * Real models — the two fixtures, Silero VAD legacy and v5, and a few dozen libonnx-testdata models
 * (subgraphs, sequences, training graphs, strings) — are mutated by flipping bytes, truncating,
 * inserting random bytes, overwriting a stretch with 0xff runs (over-long varints, huge lengths) and
 * duplicating a slice. For every mutant: decodeModel returns a model or throws CompressError('model')
 * with a byte offset within the input, in bounded time; a returned model encodes without throwing,
 * and its encoding decodes and re-encodes to the same bytes.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CompressError } from '../src/errors.js';
import { decodeModel, encodeModelToBytes } from '../src/onnx/codec.js';
import { forEachTensor } from '../src/onnx/walk.js';

const DATA_ROOT = process.env.LIBONNX_TESTDATA ?? '/usr/share/libonnx-testdata/data';
const SEED = Number(process.env.FUZZ_SEED ?? 20240611);
/** Mutants per large model (MBs each) and per small libonnx-testdata model. */
const LARGE_CASES = 100;
const SMALL_CASES = 45;
/** A decode slower than this is re-timed twice; slower every time means a hang-like path (a normal 2 MB decode takes
 * ~20 ms idle and 225 ms on two cores shared by ten processes, so the bound leaves room for a loaded CI machine). */
const DECODE_BOUND_MS = 1000;

const LARGE = [
  'test/fixtures/spam-tinybert/model.onnx',
  'test/fixtures/fmnist-cnn/model.onnx',
  'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx',
  'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx',
];
/** Hand-picked structure: subgraphs (If/Loop/Scan), sequences, optionals, functions, training, strings. */
const PICKED = [
  'node/test_if',
  'node/test_if_seq',
  'node/test_loop11',
  'node/test_loop13_seq',
  'node/test_scan9_sum',
  'node/test_sequence_map_add_2_sequences',
  'node/test_optional_get_element_sequence',
  'node/test_range_float_type_positive_delta_expanded',
  'node/test_layer_normalization_4d_axis0_expanded',
  'node/test_gru_defaults',
  'node/test_constant',
  'node/test_cast_FLOAT_to_STRING',
  'node/test_adam_multiple',
  'simple/test_gradient_of_add_and_mul',
  'simple/test_strnorm_model_monday_casesensintive_lower',
  'pytorch-operator/test_operator_symbolic_override_nested',
];
/** Plus this many more, spread evenly over the sorted list. */
const SPREAD = 24;

/** Deterministic pseudo-random numbers (mulberry32). */
function mulberry32(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function testdataModels(): string[] {
  if (!existsSync(DATA_ROOT)) {
    throw new Error(
      `libonnx-testdata not found at ${DATA_ROOT}: run \`sudo apt-get install libonnx-testdata\` (CI installs it) ` +
        'or point LIBONNX_TESTDATA at its data folder. The fuzz corpus needs it; this is a failure, not a skip.',
    );
  }
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === 'model.onnx') out.push(p);
    }
  };
  walk(DATA_ROOT);
  return out.sort();
}

interface Seed {
  name: string;
  bytes: Uint8Array;
  /**
   * Byte ranges outside tensor payloads (the protobuf structure). Most mutations land there: a flip
   * inside a weight matrix only changes a number.
   */
  structure: [number, number][];
  structureBytes: number;
}

function seedOf(name: string, file: Buffer): Seed {
  // A plain Uint8Array copy: Buffer#slice returns a view, and mutating one would corrupt the seed.
  const bytes = new Uint8Array(file);
  const payloads: [number, number][] = [];
  forEachTensor(decodeModel(bytes, name), (t) => {
    const raw = t.rawData;
    if (raw && raw.length >= 64 && raw.buffer === bytes.buffer) {
      const start = raw.byteOffset - bytes.byteOffset;
      payloads.push([start, start + raw.length]);
    }
  });
  payloads.sort((a, b) => a[0] - b[0]);
  const structure: [number, number][] = [];
  let at = 0;
  for (const [s, e] of payloads) {
    if (s > at) structure.push([at, s]);
    at = Math.max(at, e);
  }
  if (at < bytes.length) structure.push([at, bytes.length]);
  return { name, bytes, structure, structureBytes: structure.reduce((n, [s, e]) => n + e - s, 0) };
}

type Rng = () => number;
const int = (rnd: Rng, n: number) => Math.floor(rnd() * n);

/** A position to mutate: 75 % inside the protobuf structure, else anywhere. */
function position(rnd: Rng, s: Seed, length: number): number {
  if (s.structureBytes > 0 && rnd() < 0.75) {
    let k = int(rnd, s.structureBytes);
    for (const [a, b] of s.structure) {
      if (k < b - a) return Math.min(a + k, length - 1);
      k -= b - a;
    }
  }
  return int(rnd, length);
}

const MUTATIONS = ['flip', 'truncate', 'insert', 'ff-run', 'duplicate'] as const;
type Mutation = (typeof MUTATIONS)[number];

function mutate(rnd: Rng, s: Seed, input: Uint8Array, kind: Mutation): Uint8Array {
  const len = input.length;
  if (len === 0) return input;
  switch (kind) {
    case 'flip': {
      const out = input.slice();
      const n = rnd() < 0.5 ? 1 : 2 + int(rnd, 7);
      for (let i = 0; i < n; i++) out[position(rnd, s, len)] ^= rnd() < 0.5 ? 1 << int(rnd, 8) : 1 + int(rnd, 255);
      return out;
    }
    case 'truncate':
      return input.slice(0, position(rnd, s, len));
    case 'insert': {
      const at = position(rnd, s, len);
      const extra = Uint8Array.from({ length: 1 + int(rnd, 16) }, () => int(rnd, 256));
      return concat(input.subarray(0, at), extra, input.subarray(at));
    }
    case 'ff-run': {
      const out = input.slice();
      const at = position(rnd, s, len);
      const n = 1 + int(rnd, 12);
      out.fill(0xff, at, Math.min(len, at + n));
      if (rnd() < 0.5 && at + n < len) out[at + n] = 0x01 + int(rnd, 0x7f); // sometimes a terminated (huge) varint
      return out;
    }
    case 'duplicate': {
      const from = position(rnd, s, len);
      const slice = input.subarray(from, Math.min(len, from + 1 + int(rnd, 256)));
      const at = position(rnd, s, len);
      return concat(input.subarray(0, at), slice, input.subarray(at));
    }
  }
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

type Outcome = { ok: true; model: ReturnType<typeof decodeModel> } | { ok: false; error: unknown };

function timedDecode(bytes: Uint8Array): { outcome: Outcome; ms: number } {
  const t0 = performance.now();
  let outcome: Outcome;
  try {
    outcome = { ok: true, model: decodeModel(bytes, 'mutant.onnx') };
  } catch (error) {
    outcome = { ok: false, error };
  }
  return { outcome, ms: performance.now() - t0 };
}

describe('decoder mutation fuzz', () => {
  it(`survives ≥ 2,000 mutated real models (seed ${SEED})`, () => {
    const all = testdataModels();
    const byName = new Map(all.map((p) => [relative(DATA_ROOT, p).replace(/\/model\.onnx$/, ''), p]));
    const small = new Set<string>();
    for (const name of PICKED) {
      const p = byName.get(name);
      expect(p, `libonnx-testdata model ${name}`).toBeDefined();
      small.add(p!);
    }
    for (let i = 0; i < SPREAD; i++) small.add(all[Math.floor(((i + 0.5) * all.length) / SPREAD)]);

    const seeds: [Seed, number][] = [
      ...LARGE.map((f): [Seed, number] => [seedOf(f, readFileSync(f)), LARGE_CASES]),
      ...[...small].map((p): [Seed, number] => [seedOf(relative(DATA_ROOT, p), readFileSync(p)), SMALL_CASES]),
    ];

    const rnd = mulberry32(SEED);
    const stats = { cases: 0, decoded: 0, rejected: 0, slowest: 0, slowestCase: '', byMutation: {} as Record<string, number> };
    const problems: string[] = [];
    const decodedBy: Record<string, number> = {};
    const t0 = performance.now();

    for (const [seed, cases] of seeds) {
      for (let c = 0; c < cases; c++) {
        // Mostly one mutation, sometimes two or three stacked.
        const applied: Mutation[] = [];
        let bytes = seed.bytes;
        const r = rnd();
        for (let k = r < 0.6 ? 1 : r < 0.85 ? 2 : 3; k > 0; k--) {
          const m = MUTATIONS[int(rnd, MUTATIONS.length)];
          applied.push(m);
          bytes = mutate(rnd, seed, bytes, m);
        }
        const label = `${seed.name} case ${c} [${applied.join('+')}] (${bytes.length} bytes)`;
        stats.cases++;
        for (const m of applied) stats.byMutation[m] = (stats.byMutation[m] ?? 0) + 1;

        let { outcome, ms } = timedDecode(bytes);
        // Re-time a slow decode (up to twice) to rule out a GC pause or a core busy with other work.
        for (let retry = 0; retry < 2 && ms > DECODE_BOUND_MS; retry++) ({ outcome, ms } = timedDecode(bytes));
        if (ms > stats.slowest) [stats.slowest, stats.slowestCase] = [ms, label];
        if (ms > DECODE_BOUND_MS) problems.push(`${label}: decode took ${ms.toFixed(0)} ms`);

        if (!outcome.ok) {
          const e = outcome.error;
          stats.rejected++;
          if (!(e instanceof CompressError)) problems.push(`${label}: threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
          else if (e.kind !== 'model') problems.push(`${label}: CompressError of kind ${e.kind}`);
          else if (typeof e.location.offset !== 'number' || e.location.offset < 0 || e.location.offset > bytes.length) {
            problems.push(`${label}: offset ${e.location.offset} outside [0, ${bytes.length}]`);
          }
          continue;
        }
        stats.decoded++;
        for (const m of applied) decodedBy[m] = (decodedBy[m] ?? 0) + 1;
        try {
          const once = encodeModelToBytes(outcome.model);
          const twice = encodeModelToBytes(decodeModel(once, 're-encoded'));
          if (Buffer.compare(once, twice) !== 0) problems.push(`${label}: encoding is not stable (${once.length} vs ${twice.length} bytes)`);
        } catch (e) {
          problems.push(`${label}: encoding a decoded mutant threw ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        }
        if (problems.length > 20) break;
      }
    }

    console.log(
      `fuzz: ${stats.cases} mutants of ${seeds.length} models in ${((performance.now() - t0) / 1000).toFixed(1)} s — ` +
        `${stats.decoded} decoded, ${stats.rejected} rejected with CompressError, slowest decode ${stats.slowest.toFixed(1)} ms (${stats.slowestCase}); ` +
        `mutations ${JSON.stringify(stats.byMutation)}, decoded after ${JSON.stringify(decodedBy)}`,
    );
    expect(problems).toEqual([]);
    expect(stats.cases).toBeGreaterThanOrEqual(2000);
    // Both outcomes must be exercised, or the mutations are not reaching the structure.
    expect(stats.rejected).toBeGreaterThan(stats.cases * 0.3);
    expect(stats.decoded).toBeGreaterThan(stats.cases * 0.05);
  }, 60_000);
});
