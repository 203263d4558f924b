/**
 * Per-layer Hessians for GPTQ, H = XᵀX / rows, where X [rows, K] is everything a MatMul/Gemm read as
 * its activation input over the calibration samples (batch and sequence dims flattened into rows).
 *
 * XᵀX is computed inside onnxruntime: a copy of the model gets, per activation, Reshape(X, [−1, K]) →
 * Transpose → MatMul → a [K, K] graph output (and the Reshape's Shape for the row count), so each run
 * returns K×K numbers per layer instead of the activations themselves. Samples run stacked in batches
 * when their inputs allow (src/data/batch.ts stackSamples), else one by one. Sums are kept in float64.
 */
import type * as ort from 'onnxruntime-node';
import { CompressError } from '../../errors.js';
import { stackSamples } from '../../data/batch.js';
import type { Sample } from '../../data/types.js';
import { DataType } from '../../onnx/dtypes.js';
import { extendGraph } from '../../onnx/edit.js';
import { makeAttribute, makeNode, NameScope } from '../../onnx/graph.js';
import { makeInt64Tensor } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, ValueInfoProto } from '../../onnx/types.js';
import { inputSpecs, openSession, runSession } from '../../runtime/session.js';

export interface HessianRequest {
  /** The activation value (a main-graph value or graph input). */
  value: string;
  K: number;
}

export interface Hessian {
  /** Σ XᵀX / rows, [K, K]. */
  h: Float64Array;
  rows: number;
}

export interface HessianOptions {
  /** Samples per run (default 32). */
  batch?: number;
  intraOpThreads?: number;
  progress?: (fraction: number) => void;
}

/** Hessians of the requested activations (keyed by value name) over the samples. */
export async function collectHessians(model: ModelProto, requests: HessianRequest[], samples: Sample[], opts: HessianOptions = {}): Promise<Map<string, Hessian>> {
  const g0 = model.graph;
  if (!g0) throw new CompressError('model', 'the model has no graph');
  const names = new NameScope(model);
  const nodes: NodeProto[] = [];
  const extra: ValueInfoProto[] = [];
  const unique = [...new Map(requests.map((r) => [r.value, r])).values()];
  const outputs: { value: string; gram: string; shape: string; K: number }[] = [];
  for (const r of unique) {
    const base = names.unique(`${r.value}_gptq`);
    const shapeConst = names.unique(`${base}_rows_shape`);
    const x2 = names.unique(`${base}_rows`);
    const xt = names.unique(`${base}_rows_t`);
    const gram = names.unique(`${base}_gram`);
    const shape = names.unique(`${base}_shape`);
    nodes.push(
      makeNode('Constant', [], [shapeConst], { name: names.unique(`${base}_Constant`), attributes: [makeAttribute('value', makeInt64Tensor(shapeConst, [-1, r.K]))] }),
      makeNode('Reshape', [r.value, shapeConst], [x2], { name: names.unique(`${base}_Reshape`) }),
      makeNode('Transpose', [x2], [xt], { name: names.unique(`${base}_Transpose`), attributes: [makeAttribute('perm', [1, 0], true)] }),
      makeNode('MatMul', [xt, x2], [gram], { name: names.unique(`${base}_MatMul`) }),
      makeNode('Shape', [x2], [shape], { name: names.unique(`${base}_Shape`) }),
    );
    extra.push(
      { name: gram, type: { tensorType: { elemType: DataType.FLOAT, shape: { dim: [{ dimValue: r.K }, { dimValue: r.K }] } } }, metadataProps: [] },
      { name: shape, type: { tensorType: { elemType: DataType.INT64, shape: { dim: [{ dimValue: 2 }] } } }, metadataProps: [] },
    );
    outputs.push({ value: r.value, gram, shape, K: r.K });
  }
  const copy = extendGraph(model, { nodes, outputs: extra });
  const result = new Map<string, Hessian>(outputs.map((o) => [o.value, { h: new Float64Array(o.K * o.K), rows: 0 }]));
  if (samples.length === 0) return result;
  const { session } = await openSession(copy, { intraOpThreads: opts.intraOpThreads ?? 1 });
  const specs = inputSpecs(model);
  const fetches = outputs.flatMap((o) => [o.gram, o.shape]);
  const batch = Math.max(1, opts.batch ?? 32);
  const add = (out: Record<string, ort.Tensor>) => {
    for (const o of outputs) {
      const acc = result.get(o.value)!;
      const gram = out[o.gram].data as Float32Array;
      for (let i = 0; i < gram.length; i++) acc.h[i] += gram[i];
      acc.rows += Number((out[o.shape].data as BigInt64Array)[0]);
    }
  };
  try {
    for (let i = 0; i < samples.length; i += batch) {
      const chunk = samples.slice(i, i + batch);
      const stacked = chunk.length > 1 ? stackSamples(chunk, specs) : undefined;
      if (stacked) add(await runSession(session, stacked.feeds, fetches));
      else for (const s of chunk) add(await runSession(session, s.feeds, fetches));
      opts.progress?.(Math.min(1, (i + chunk.length) / samples.length));
    }
  } finally {
    await session.release();
  }
  for (const acc of result.values()) {
    if (acc.rows > 0) for (let i = 0; i < acc.h.length; i++) acc.h[i] /= acc.rows;
  }
  return result;
}
