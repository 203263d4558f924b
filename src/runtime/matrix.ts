/**
 * onnxruntime as the matrix engine (FACTS.md: a MatMul in ORT is ~200× faster than JS loops).
 *
 * Each operation is a one-node ONNX graph built with the project's codec, with symbolic dims, so one
 * session per operation serves every shape; sessions are created on first use and cached until
 * dispose(). All matrices are row-major float32. ORT's JavaScript API is asynchronous, so every
 * operation returns a promise (the run itself is synchronous native code; the promise costs one
 * event-loop turn).
 */
import * as ort from 'onnxruntime-node';
import { encodeModelToBytes } from '../onnx/codec.js';
import { DataType } from '../onnx/dtypes.js';
import { makeAttribute, makeNode } from '../onnx/graph.js';
import type { ModelProto, NodeProto, ValueInfoProto } from '../onnx/types.js';
import { openSession, runSession, type DeviceRequest } from './session.js';

type Dim = number | string;

function io(name: string, dims: Dim[]): ValueInfoProto {
  return {
    name,
    type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
    metadataProps: [],
  };
}

function oneNodeModel(node: NodeProto, inputs: ValueInfoProto[], outputs: ValueInfoProto[]): ModelProto {
  return {
    irVersion: 8,
    producerName: 'unplugin-onnx-compress',
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [],
    trainingInfo: [],
    functions: [],
    graph: {
      name: 'matrix',
      node: [node],
      initializer: [],
      input: inputs,
      output: outputs,
      valueInfo: [],
      quantizationAnnotation: [],
      sparseInitializer: [],
      metadataProps: [],
    },
  };
}

type OpName = 'matmul' | 'transA' | 'transB' | 'gram';

function buildOp(op: OpName): ModelProto {
  switch (op) {
    case 'matmul':
      return oneNodeModel(makeNode('MatMul', ['A', 'B'], ['C']), [io('A', ['m', 'k']), io('B', ['k', 'n'])], [io('C', ['m', 'n'])]);
    case 'transA': // Aᵀ·B, A [k, m]
      return oneNodeModel(
        makeNode('Gemm', ['A', 'B'], ['C'], { attributes: [makeAttribute('transA', 1, true)] }),
        [io('A', ['k', 'm']), io('B', ['k', 'n'])],
        [io('C', ['m', 'n'])],
      );
    case 'transB': // A·Bᵀ, B [n, k]
      return oneNodeModel(
        makeNode('Gemm', ['A', 'B'], ['C'], { attributes: [makeAttribute('transB', 1, true)] }),
        [io('A', ['m', 'k']), io('B', ['n', 'k'])],
        [io('C', ['m', 'n'])],
      );
    case 'gram': // XᵀX from one input
      return oneNodeModel(
        makeNode('Gemm', ['X', 'X'], ['C'], { attributes: [makeAttribute('transA', 1, true)] }),
        [io('X', ['rows', 'cols'])],
        [io('C', ['cols', 'cols'])],
      );
  }
}

export interface MatrixEngineOptions {
  /** intraOpNumThreads of the engine's sessions (default 1). */
  intraOpThreads?: number;
  /** Default 'cpu'. */
  device?: DeviceRequest;
}

function check(name: string, a: Float32Array, rows: number, cols: number): void {
  if (a.length !== rows * cols) throw new RangeError(`${name} has ${a.length} values, expected ${rows}×${cols} = ${rows * cols}`);
}

export class MatrixEngine {
  private readonly sessions = new Map<OpName, Promise<ort.InferenceSession>>();
  private disposed = false;

  constructor(private readonly opts: MatrixEngineOptions = {}) {}

  private session(op: OpName): Promise<ort.InferenceSession> {
    if (this.disposed) throw new Error('MatrixEngine was disposed');
    let s = this.sessions.get(op);
    if (!s) {
      s = openSession(encodeModelToBytes(buildOp(op)), { device: this.opts.device ?? 'cpu', intraOpThreads: this.opts.intraOpThreads ?? 1 }).then((o) => o.session);
      this.sessions.set(op, s);
    }
    return s;
  }

  private async run(op: OpName, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
    const out = await runSession(await this.session(op), feeds);
    return out.C.data as Float32Array;
  }

  /** A·B: A [m, k], B [k, n] → [m, n]. */
  async matmul(a: Float32Array, m: number, k: number, b: Float32Array, n: number): Promise<Float32Array> {
    check('A', a, m, k);
    check('B', b, k, n);
    return this.run('matmul', { A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [k, n]) });
  }

  /** Aᵀ·B: A [k, m], B [k, n] → [m, n]. */
  async matmulTransA(a: Float32Array, k: number, m: number, b: Float32Array, n: number): Promise<Float32Array> {
    check('A', a, k, m);
    check('B', b, k, n);
    return this.run('transA', { A: new ort.Tensor('float32', a, [k, m]), B: new ort.Tensor('float32', b, [k, n]) });
  }

  /** A·Bᵀ: A [m, k], B [n, k] → [m, n]. */
  async matmulTransB(a: Float32Array, m: number, k: number, b: Float32Array, n: number): Promise<Float32Array> {
    check('A', a, m, k);
    check('B', b, n, k);
    return this.run('transB', { A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [n, k]) });
  }

  /** XᵀX: X [rows, cols] → [cols, cols]. */
  async gram(x: Float32Array, rows: number, cols: number): Promise<Float32Array> {
    check('X', x, rows, cols);
    return this.run('gram', { X: new ort.Tensor('float32', x, [rows, cols]) });
  }

  /** Releases every cached session. */
  async dispose(): Promise<void> {
    this.disposed = true;
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }
}
