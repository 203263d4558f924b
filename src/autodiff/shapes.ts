/**
 * The shape probe: run the forward model with every value as an output, on two or more feeds that
 * differ in batch size, and keep each value's rank, element type and dims — a dim that was the same in
 * every run is fixed (for this data), one that changed is null. Cheaper and more reliable than a
 * symbolic shape inference over every op: onnxruntime already knows how each op shapes its output.
 */
import type * as ort from 'onnxruntime-node';
import { dataTypeName } from '../onnx/dtypes.js';
import { withOutputs } from '../onnx/edit.js';
import { dimsOf } from '../onnx/tensor.js';
import type { ModelProto } from '../onnx/types.js';
import { openSession, runSession, type DeviceRequest } from '../runtime/session.js';
import type { Dim, ShapeInfo } from './builder.js';

export interface ProbeOptions {
  device?: DeviceRequest;
  intraOpThreads?: number;
}

export async function probeShapes(model: ModelProto, feedSets: Record<string, ort.Tensor>[], opts: ProbeOptions = {}): Promise<ShapeInfo> {
  const g = model.graph!;
  const info: ShapeInfo = new Map();
  for (const t of g.initializer) if (t.name) info.set(t.name, { dims: dimsOf(t), type: dataTypeName(t.dataType ?? 0) });
  // Every value a node computes becomes an output, so one run shows all the shapes.
  const probe = withOutputs(model, g.node.flatMap((n) => n.output.filter((o) => o)));
  const { session } = await openSession(probe, { device: opts.device, intraOpThreads: opts.intraOpThreads, optimization: 'basic' });
  const seen = new Map<string, { dims: Dim[]; type: string }>();
  const record = (name: string, t: ort.Tensor) => {
    const before = seen.get(name);
    if (!before) seen.set(name, { dims: [...t.dims], type: t.type });
    else if (before.dims.length === t.dims.length) before.dims = before.dims.map((d, i) => (d === t.dims[i] ? d : null));
  };
  try {
    for (const feeds of feedSets) {
      const out = await runSession(session, feeds);
      for (const [name, t] of Object.entries(feeds)) record(name, t);
      for (const [name, t] of Object.entries(out)) record(name, t);
    }
  } finally {
    await session.release();
  }
  for (const [name, v] of seen) info.set(name, v);
  return info;
}
