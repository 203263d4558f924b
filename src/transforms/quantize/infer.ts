/**
 * Element types of every value of a model, enough for float16 conversion to know which values are
 * float: declared types (graph inputs/outputs, value_info, initializers, Constant values) first, then
 * per-op rules, then "same type as the first input" (true for the elementwise, shape and data-movement
 * ops that make up most graphs). Values it cannot type are left out (callers treat them as non-float).
 */
import { DataType } from '../../onnx/dtypes.js';
import { attribute } from '../../onnx/graph.js';
import type { GraphProto, ModelProto, NodeProto } from '../../onnx/types.js';
import { subgraphsOf } from '../../onnx/walk.js';

/** Types of the values a graph defines, and a link to the enclosing graph's scope. */
export class TypeScope {
  readonly own = new Map<string, number>();
  constructor(readonly outer?: TypeScope) {}
  get(name: string): number | undefined {
    return this.own.get(name) ?? this.outer?.get(name);
  }
}

const FIXED: Record<string, number> = {
  Shape: DataType.INT64,
  Size: DataType.INT64,
  NonZero: DataType.INT64,
  ArgMax: DataType.INT64,
  ArgMin: DataType.INT64,
  NonMaxSuppression: DataType.INT64,
  Equal: DataType.BOOL,
  Less: DataType.BOOL,
  Greater: DataType.BOOL,
  LessOrEqual: DataType.BOOL,
  GreaterOrEqual: DataType.BOOL,
  Not: DataType.BOOL,
  And: DataType.BOOL,
  Or: DataType.BOOL,
  Xor: DataType.BOOL,
  IsNaN: DataType.BOOL,
  IsInf: DataType.BOOL,
  MatMulInteger: DataType.INT32,
  ConvInteger: DataType.INT32,
  StringNormalizer: DataType.STRING,
  RegexFullMatch: DataType.BOOL,
};

function tensorAttrType(node: NodeProto, name: string): number | undefined {
  return attribute(node, name)?.t?.dataType;
}

function intAttr(node: NodeProto, name: string): number | undefined {
  const a = attribute(node, name);
  return a?.i === undefined ? undefined : Number(a.i);
}

/** Output element types of one node (undefined entries: unknown). */
function outputTypes(node: NodeProto, t: (name: string) => number | undefined, scopeOf: (g: GraphProto | undefined) => TypeScope | undefined): (number | undefined)[] {
  const op = node.opType ?? '';
  const n = node.output.length;
  const all = (v: number | undefined) => new Array<number | undefined>(n).fill(v);
  const firstInput = () => {
    for (const i of node.input) if (i) return t(i);
    return undefined;
  };
  const domain = node.domain ?? '';
  if (domain === '' || domain === 'ai.onnx') {
    if (op in FIXED) return all(FIXED[op]);
    switch (op) {
      case 'Cast':
        return all(intAttr(node, 'to'));
      case 'CastLike':
        return all(t(node.input[1]));
      case 'Constant': {
        const tt = tensorAttrType(node, 'value');
        if (tt !== undefined) return all(tt);
        if (attribute(node, 'value_float') || attribute(node, 'value_floats')) return all(DataType.FLOAT);
        if (attribute(node, 'value_int') || attribute(node, 'value_ints')) return all(DataType.INT64);
        if (attribute(node, 'value_string') || attribute(node, 'value_strings')) return all(DataType.STRING);
        return all(undefined);
      }
      case 'ConstantOfShape':
        return all(tensorAttrType(node, 'value') ?? DataType.FLOAT);
      case 'EyeLike':
      case 'RandomNormalLike':
      case 'RandomUniformLike':
      case 'Bernoulli':
        return all(intAttr(node, 'dtype') ?? firstInput());
      case 'RandomNormal':
      case 'RandomUniform':
        return all(intAttr(node, 'dtype') ?? DataType.FLOAT);
      case 'Multinomial':
        return all(intAttr(node, 'dtype') ?? DataType.INT32);
      case 'TopK':
      case 'MaxPool':
        return [firstInput(), DataType.INT64];
      case 'Unique':
        return [firstInput(), DataType.INT64, DataType.INT64, DataType.INT64];
      case 'DynamicQuantizeLinear':
        return [DataType.UINT8, DataType.FLOAT, DataType.UINT8];
      case 'QuantizeLinear':
        return all(intAttr(node, 'output_dtype') || (node.input[2] ? t(node.input[2]) : DataType.UINT8));
      case 'DequantizeLinear':
        return all(intAttr(node, 'output_dtype') || t(node.input[1]));
      case 'Where':
        return all(t(node.input[1]));
      case 'OneHot':
        return all(t(node.input[2]));
      case 'LayerNormalization':
        return [firstInput(), intAttr(node, 'stash_type') ?? DataType.FLOAT, intAttr(node, 'stash_type') ?? DataType.FLOAT];
      case 'If': {
        const then = graphOf(node, 'then_branch');
        const other = graphOf(node, 'else_branch');
        return node.output.map((_, k) => scopeOf(then)?.get(then?.output[k]?.name ?? '') ?? scopeOf(other)?.get(other?.output[k]?.name ?? ''));
      }
      case 'Loop': {
        const body = graphOf(node, 'body');
        return node.output.map((_, k) => scopeOf(body)?.get(body?.output[k + 1]?.name ?? ''));
      }
      case 'Scan': {
        const body = graphOf(node, 'body');
        return node.output.map((_, k) => scopeOf(body)?.get(body?.output[k]?.name ?? ''));
      }
    }
  } else if (domain === 'com.microsoft') {
    switch (op) {
      case 'GatherBlockQuantized':
        return all(t(node.input[2]));
      case 'DynamicQuantizeMatMul':
      case 'MatMulIntegerToFloat':
        return all(t(node.input[2]));
    }
  }
  return all(firstInput());
}

function graphOf(node: NodeProto, name: string): GraphProto | undefined {
  return attribute(node, name)?.g;
}

function declare(scope: TypeScope, g: GraphProto): void {
  for (const v of [...g.input, ...g.valueInfo, ...g.output]) {
    const et = v.type?.tensorType?.elemType;
    if (v.name && et) scope.own.set(v.name, et);
  }
  for (const init of g.initializer) if (init.name && init.dataType) scope.own.set(init.name, init.dataType);
}

/** Infers types for `g` and its subgraphs; returns each graph's scope. */
export function inferTypes(model: ModelProto): Map<GraphProto, TypeScope> {
  const scopes = new Map<GraphProto, TypeScope>();
  const visit = (g: GraphProto, outer?: TypeScope): TypeScope => {
    const scope = new TypeScope(outer);
    scopes.set(g, scope);
    declare(scope, g);
    const t = (name: string) => (name ? scope.get(name) : undefined);
    for (const node of g.node) {
      for (const sub of subgraphsOf(node)) visit(sub, scope);
      const types = outputTypes(node, t, (sg) => (sg ? scopes.get(sg) : undefined));
      node.output.forEach((o, k) => {
        if (!o) return;
        // A declared type wins over the rule (value_info may be more precise than "first input").
        if (!scope.own.has(o) && types[k] !== undefined) scope.own.set(o, types[k]!);
      });
    }
    return scope;
  };
  if (model.graph) visit(model.graph);
  return scopes;
}
