/**
 * A model's inputs and outputs as the pipeline and the data loaders name them: ORT type names and dims,
 * read from the graph alone. Apart from runtime/session.ts so that a build which runs nothing in this
 * process (verification happens in the isolated child) does not load onnxruntime's native library
 * (~60 ms) to learn them.
 */
import { dataTypeName } from '../onnx/dtypes.js';
import type { ModelProto, TypeProto } from '../onnx/types.js';
import type { InputSpec } from '../data/types.js';

function typeDims(type: TypeProto | undefined): (number | string)[] {
  const dims = type?.tensorType?.shape?.dim ?? [];
  return dims.map((d) => (d.dimValue !== undefined ? Number(d.dimValue) : d.dimParam ? d.dimParam : '?'));
}

function typeName(type: TypeProto | undefined): string {
  const elem = type?.tensorType?.elemType;
  if (elem === undefined) return type?.sequenceType ? 'sequence' : type?.mapType ? 'map' : 'unknown';
  try {
    return dataTypeName(elem);
  } catch {
    return `type${elem}`;
  }
}

/**
 * The model's real inputs (graph inputs that are not initializers): ORT type names and dims (numbers,
 * symbolic names, '?' for unnamed unknown dims). An input without shape information gets `dims: []`.
 */
export function inputSpecs(model: ModelProto): InputSpec[] {
  const g = model.graph;
  if (!g) return [];
  const inits = new Set(g.initializer.map((t) => t.name));
  return g.input.filter((v) => v.name && !inits.has(v.name)).map((v) => ({ name: v.name!, type: typeName(v.type), dims: typeDims(v.type) }));
}

/** The graph's output names, in order. */
export function outputNames(model: ModelProto): string[] {
  return (model.graph?.output ?? []).map((o) => o.name ?? '');
}

/** Output specs (type and dims) like inputSpecs. */
export function outputSpecs(model: ModelProto): InputSpec[] {
  return (model.graph?.output ?? []).map((v) => ({ name: v.name ?? '', type: typeName(v.type), dims: typeDims(v.type) }));
}
