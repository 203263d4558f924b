/**
 * Synthetic ONNX models for benchmarks, built with the project's own writer (src/onnx). Deterministic:
 * weights come from a seeded PRNG, ~N(0, 0.02); biases likewise; LayerNorm scale 1, bias 0.
 *
 * - transformerStack: BERT-shaped encoder layers (single-head attention with real shapes, GELU MLP)
 * - mlpStack: the 113 MB reference model of docs/facts.md (6 × [LayerNorm → MatMul+Add → Gelu → MatMul+Add])
 * - wideGraph: a huge graph (default 100k nodes) without weights
 *
 * All use opset 17 (LayerNormalization) and GELU written as 0.5·x·(1 + erf(x/√2)), so ORT ≥ 1.14 and
 * onnxruntime-web run them.
 *
 *   npx tsx bench/lib/synthetic.ts <transformer|mlp|wide> <out.onnx> [--size-mb N] [--layers N]
 *       [--hidden N] [--ff N] [--seq N] [--nodes N] [--seed N] [--external]
 */
import { pathToFileURL } from 'node:url';
import { DataType } from '../../src/onnx/dtypes.js';
import { makeAttribute, makeNode } from '../../src/onnx/graph.js';
import { writeModel, type WriteResult } from '../../src/onnx/io.js';
import { makeTensor } from '../../src/onnx/tensor.js';
import type { GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto } from '../../src/onnx/types.js';
import { seededUint32 } from '../../src/random.js';

export const OPSET = 17;
export const IR_VERSION = 8;

// ---------------------------------------------------------------- random numbers

/** mulberry32 (src/random.ts), re-exported for the benches. */
export const prng = seededUint32;

/** Fills `out` with N(0, std²) values (Box–Muller) from `next`. */
export function fillNormal(out: Float32Array, next: () => number, std: number): Float32Array {
  const n = out.length;
  for (let i = 0; i < n; i += 2) {
    const u1 = (next() + 1) / 4294967297; // (0, 1]
    const u2 = next() / 4294967296;
    const r = Math.sqrt(-2 * Math.log(u1)) * std;
    const th = 2 * Math.PI * u2;
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

// ---------------------------------------------------------------- builder

/** Models written with external data when `writeSynthetic` writes them. */
const wantsExternal = new WeakSet<ModelProto>();

class Builder {
  readonly nodes: NodeProto[] = [];
  readonly inits: TensorProto[] = [];
  private readonly next: () => number;
  private n = 0;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  /** A float32 initializer of normal noise. */
  weight(name: string, dims: number[], std = 0.02): string {
    const size = dims.reduce((a, b) => a * b, 1);
    this.inits.push(makeTensor(name, DataType.FLOAT, dims, fillNormal(new Float32Array(size), this.next, std)));
    return name;
  }
  /** A float32 initializer filled with one value. */
  filled(name: string, dims: number[], value: number): string {
    const size = dims.reduce((a, b) => a * b, 1);
    this.inits.push(makeTensor(name, DataType.FLOAT, dims, new Float32Array(size).fill(value)));
    return name;
  }
  node(op: string, inputs: string[], attrs: NodeProto['attribute'] = [], out?: string): string {
    const name = `${op}_${this.n++}`;
    const output = out ?? `${name}_out`;
    this.nodes.push(makeNode(op, inputs, [output], { name, attributes: attrs }));
    return output;
  }
  layerNorm(prefix: string, x: string, hidden: number): string {
    const g = this.filled(`${prefix}.weight`, [hidden], 1);
    const b = this.filled(`${prefix}.bias`, [hidden], 0);
    return this.node('LayerNormalization', [x, g, b], [makeAttribute('axis', -1, true), makeAttribute('epsilon', 1e-5)]);
  }
  /** x @ W + b with W [inDim, outDim]. */
  linear(prefix: string, x: string, inDim: number, outDim: number): string {
    const w = this.weight(`${prefix}.weight`, [inDim, outDim]);
    const b = this.weight(`${prefix}.bias`, [outDim]);
    return this.node('Add', [this.node('MatMul', [x, w]), b]);
  }
  /** GELU, erf form: 0.5 · x · (1 + erf(x / √2)), with shared scalar constants. */
  gelu(x: string): string {
    this.scalar('gelu.sqrt2', Math.SQRT2);
    this.scalar('gelu.one', 1);
    this.scalar('gelu.half', 0.5);
    const e = this.node('Erf', [this.node('Div', [x, 'gelu.sqrt2'])]);
    return this.node('Mul', [this.node('Mul', [x, this.node('Add', [e, 'gelu.one'])]), 'gelu.half']);
  }
  scalar(name: string, value: number): string {
    if (!this.inits.some((t) => t.name === name)) this.inits.push(makeTensor(name, DataType.FLOAT, [], Float32Array.of(value)));
    return name;
  }
}

export function valueInfo(name: string, elemType: number, dims: (number | string)[]): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
    metadataProps: [],
  };
}

export function makeModel(graph: { name: string; node: NodeProto[]; initializer: TensorProto[]; input: ValueInfoProto[]; output: ValueInfoProto[] }, docString?: string): ModelProto {
  const g: GraphProto = { ...graph, valueInfo: [], quantizationAnnotation: [], sparseInitializer: [], metadataProps: [] };
  const model: ModelProto = {
    irVersion: IR_VERSION,
    producerName: 'unplugin-onnx-compress synthetic',
    producerVersion: '0.1.0',
    graph: g,
    opsetImport: [{ domain: '', version: OPSET }],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
  };
  if (docString) model.docString = docString;
  return model;
}

// ---------------------------------------------------------------- generators

export interface TransformerOptions {
  layers: number;
  hidden: number;
  ff: number;
  /** Sequence length: a number, or a symbolic name (default 'seq'). */
  seq?: number | string;
  /** Write with external data (`writeSynthetic` puts tensors ≥ 1 KB into `<file>.data`). */
  external?: boolean;
  seed?: number;
}

/** Float32 bytes of one transformerStack layer's parameters. */
export function transformerLayerBytes(hidden: number, ff: number): number {
  return 4 * (4 * (hidden * hidden + hidden) + hidden * ff + ff + ff * hidden + hidden + 4 * hidden);
}

/**
 * BERT-shaped encoder: per layer
 *   h = x + Wo·softmax(q·kᵀ/√H)·v  with q, k, v = LN(x)·Wq/Wk/Wv (+ biases)   (single head)
 *   y = h + W2·gelu(W1·LN(h) + b1) + b2
 * Input `input` float32 [batch, seq, hidden], output `output` same shape.
 */
export function transformerStack(opts: TransformerOptions): ModelProto {
  const { layers, hidden: H, ff: F } = opts;
  const seq = opts.seq ?? 'seq';
  const b = new Builder(opts.seed ?? 1);
  const scale = b.scalar('attn.scale', Math.sqrt(H));
  let x = 'input';
  for (let l = 0; l < layers; l++) {
    const p = `layers.${l}`;
    const ln1 = b.layerNorm(`${p}.ln1`, x, H);
    const q = b.linear(`${p}.attn.q`, ln1, H, H);
    const k = b.linear(`${p}.attn.k`, ln1, H, H);
    const v = b.linear(`${p}.attn.v`, ln1, H, H);
    const kT = b.node('Transpose', [k], [makeAttribute('perm', [0, 2, 1], true)]);
    const scores = b.node('Div', [b.node('MatMul', [q, kT]), scale]);
    const probs = b.node('Softmax', [scores], [makeAttribute('axis', -1, true)]);
    const ctx = b.node('MatMul', [probs, v]);
    const h = b.node('Add', [x, b.linear(`${p}.attn.o`, ctx, H, H)]);
    const ln2 = b.layerNorm(`${p}.ln2`, h, H);
    const up = b.gelu(b.linear(`${p}.mlp.up`, ln2, H, F));
    x = b.node('Add', [h, b.linear(`${p}.mlp.down`, up, F, H)], [], l === layers - 1 ? 'output' : undefined);
  }
  if (layers === 0) x = b.node('Identity', [x], [], 'output');
  const model = makeModel(
    {
      name: 'transformer_stack',
      node: b.nodes,
      initializer: b.inits,
      input: [valueInfo('input', DataType.FLOAT, ['batch', seq, H])],
      output: [valueInfo('output', DataType.FLOAT, ['batch', seq, H])],
    },
    `transformerStack layers=${layers} hidden=${H} ff=${F}`,
  );
  if (opts.external) wantsExternal.add(model);
  return model;
}

export interface MlpOptions {
  layers: number;
  hidden: number;
  ff: number;
  external?: boolean;
  seed?: number;
}

/** Float32 bytes of one mlpStack layer's parameters. */
export function mlpLayerBytes(hidden: number, ff: number): number {
  return 4 * (2 * hidden + hidden * ff + ff + ff * hidden + hidden);
}

/**
 * layers × [LayerNorm → MatMul hidden×ff + Add → Gelu → MatMul ff×hidden + Add]; with layers=6,
 * hidden=768, ff=3072 this is the 113 MB reference model of docs/facts.md. Input float32 [batch, seq, hidden].
 */
export function mlpStack(opts: MlpOptions): ModelProto {
  const { layers, hidden: H, ff: F } = opts;
  const b = new Builder(opts.seed ?? 1);
  let x = 'input';
  for (let l = 0; l < layers; l++) {
    const p = `layers.${l}`;
    const up = b.gelu(b.linear(`${p}.up`, b.layerNorm(`${p}.ln`, x, H), H, F));
    const w = b.weight(`${p}.down.weight`, [F, H]);
    const bias = b.weight(`${p}.down.bias`, [H]);
    x = b.node('Add', [b.node('MatMul', [up, w]), bias], [], l === layers - 1 ? 'output' : undefined);
  }
  if (layers === 0) x = b.node('Identity', [x], [], 'output');
  const model = makeModel(
    {
      name: 'mlp_stack',
      node: b.nodes,
      initializer: b.inits,
      input: [valueInfo('input', DataType.FLOAT, ['batch', 'seq', H])],
      output: [valueInfo('output', DataType.FLOAT, ['batch', 'seq', H])],
    },
    `mlpStack layers=${layers} hidden=${H} ff=${F}`,
  );
  if (opts.external) wantsExternal.add(model);
  return model;
}

export interface WideOptions {
  /** Node count (default 100 000). */
  nodes?: number;
  /** Width of the [1, width] float32 input (default 16). */
  width?: number;
}

/** A chain of `nodes` nodes cycling Relu → Identity → Add(·, input), no weights. */
export function wideGraph(opts: WideOptions = {}): ModelProto {
  const count = opts.nodes ?? 100_000;
  const width = opts.width ?? 16;
  const nodes: NodeProto[] = [];
  let prev = 'input';
  for (let i = 0; i < count; i++) {
    const out = i === count - 1 ? 'output' : `v${i}`;
    const kind = i % 3;
    const op = kind === 0 ? 'Relu' : kind === 1 ? 'Identity' : 'Add';
    nodes.push(makeNode(op, kind === 2 ? [prev, 'input'] : [prev], [out], { name: `n${i}` }));
    prev = out;
  }
  if (count === 0) nodes.push(makeNode('Identity', ['input'], ['output'], { name: 'n0' }));
  return makeModel(
    {
      name: 'wide_graph',
      node: nodes,
      initializer: [],
      input: [valueInfo('input', DataType.FLOAT, [1, width])],
      output: [valueInfo('output', DataType.FLOAT, [1, width])],
    },
    `wideGraph nodes=${count}`,
  );
}

/** Writes a generated model (with external data `<file>.data` if it was built with `external: true`). */
export function writeSynthetic(model: ModelProto, file: string, opts: { external?: boolean } = {}): WriteResult {
  const external = opts.external ?? wantsExternal.has(model);
  return writeModel(model, file, external ? { externalData: true } : {});
}

// ---------------------------------------------------------------- CLI

export type SyntheticKind = 'transformer' | 'mlp' | 'wide';

/** Builds a model of a kind from CLI-style options; `sizeMb` picks the layer count (transformer, mlp). */
export function makeSynthetic(
  kind: SyntheticKind,
  o: { sizeMb?: number; layers?: number; hidden?: number; ff?: number; seq?: number | string; nodes?: number; seed?: number; external?: boolean } = {},
): ModelProto {
  const hidden = o.hidden ?? 768;
  const ff = o.ff ?? 4 * hidden;
  const layersFor = (perLayer: number, fallback: number) =>
    o.layers ?? (o.sizeMb !== undefined ? Math.max(1, Math.round((o.sizeMb * 1e6) / perLayer)) : fallback);
  switch (kind) {
    case 'transformer':
      return transformerStack({ layers: layersFor(transformerLayerBytes(hidden, ff), 12), hidden, ff, seq: o.seq, external: o.external, seed: o.seed });
    case 'mlp':
      return mlpStack({ layers: layersFor(mlpLayerBytes(hidden, ff), 6), hidden, ff, external: o.external, seed: o.seed });
    case 'wide':
      return wideGraph({ nodes: o.nodes });
    default:
      throw new Error(`unknown kind "${kind as string}" (transformer, mlp, wide)`);
  }
}

async function cli(argv: string[]): Promise<number> {
  const usage = 'usage: npx tsx bench/lib/synthetic.ts <transformer|mlp|wide> <out.onnx> [--size-mb N] [--layers N] [--hidden N] [--ff N] [--seq N] [--nodes N] [--seed N] [--external]';
  const pos: string[] = [];
  const o: Parameters<typeof makeSynthetic>[1] = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inlineValue] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => {
      const v = inlineValue ?? argv[++i];
      const n = Number(v);
      if (v === undefined || !Number.isFinite(n) || n < 0) throw new Error(`${flag} needs a non-negative number`);
      return n;
    };
    switch (flag) {
      case '--size-mb': o.sizeMb = value(); break;
      case '--layers': o.layers = value(); break;
      case '--hidden': o.hidden = value(); break;
      case '--ff': o.ff = value(); break;
      case '--seq': o.seq = value(); break;
      case '--nodes': o.nodes = value(); break;
      case '--seed': o.seed = value(); break;
      case '--external': o.external = true; break;
      case '--help':
        console.log(usage);
        return 0;
      default:
        if (a.startsWith('--')) {
          console.error(`unknown option ${a}\n${usage}`);
          return 2;
        }
        pos.push(a);
    }
  }
  if (pos.length !== 2 || !['transformer', 'mlp', 'wide'].includes(pos[0])) {
    console.error(usage);
    return 2;
  }
  const t0 = performance.now();
  const model = makeSynthetic(pos[0] as SyntheticKind, o);
  const t1 = performance.now();
  const r = writeSynthetic(model, pos[1]);
  const t2 = performance.now();
  console.log(
    `${pos[1]}: ${model.docString ?? pos[0]}, ${model.graph!.node.length} nodes, ${r.bytes} bytes` +
      (r.externalDataFile ? ` + ${r.externalDataFile} ${r.externalDataBytes} bytes` : '') +
      ` (generated in ${(t1 - t0).toFixed(0)} ms, written in ${(t2 - t1).toFixed(0)} ms)`,
  );
  return 0;
}

// Only when run as this file (a bundle that inlines this module must not start the CLI).
if (process.argv[1] && /synthetic\.[cm]?[jt]s$/.test(process.argv[1]) && import.meta.url === pathToFileURL(process.argv[1]).href) {
  cli(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e) => {
      console.error((e as Error).message);
      process.exitCode = 2;
    },
  );
}
