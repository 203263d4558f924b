/**
 * What an opset adapter sees: the node it converts, the graph around it (element types and ranks
 * that the model's value_info states), and helpers to add Constant nodes and fresh names.
 *
 * An adapter returns the nodes that replace the one it was given (often the same node, edited, with
 * Constant nodes before it), or throws `Unconvertible` saying why the op has no equivalent.
 */
import { DataType } from '../dtypes.js';
import { makeAttribute, makeNode, type NameScope } from '../graph.js';
import { makeTensor } from '../tensor.js';
import type { AttributeProto, GraphProto, NodeProto, TensorProto } from '../types.js';

/** Thrown by an adapter when the node has no equivalent at the newer opset. */
export class Unconvertible extends Error {}

export interface AdaptContext {
  graph: GraphProto;
  names: NameScope;
  /** The default-domain opset the model is being raised to. */
  target: number;
  /** Element type of a value when the model states it (inputs, value_info, initializers, Constants). */
  elemType(value: string): number | undefined;
  /** Rank of a value when the model states its shape. */
  rank(value: string): number | undefined;
  /** Dims of a value when the model states all of them as numbers. */
  dims(value: string): number[] | undefined;
  /** Values of a constant (initializer or Constant node output), when the value is one. */
  constantValues(value: string): number[] | undefined;
  /** Whether any node of any graph (or a graph output) reads the value. */
  isRead(value: string): boolean;
  /** A Constant node holding `tensor` (its output name is fresh, based on `base`). */
  constant(base: string, tensor: TensorProto): { node: NodeProto; name: string };
}

/** One signature change of one op, at the opset `to` where it took effect. */
export interface Adapter {
  op: string;
  /** The opset whose version of the op differs from the one before it. */
  to: number;
  /** What the adapter does, for the upgrade report ("axes attribute → input"). */
  what: string;
  adapt(node: NodeProto, ctx: AdaptContext): NodeProto[];
}

export function int64Tensor(values: readonly (number | bigint)[], dims: readonly number[] = [values.length]): TensorProto {
  return makeTensor('', DataType.INT64, dims, BigInt64Array.from(values.map((v) => BigInt(v))));
}

/** A scalar or 1-D tensor of `elemType` (float types and integer types by value). */
export function typedTensor(elemType: number, values: readonly number[], dims: readonly number[] = [values.length]): TensorProto {
  switch (elemType) {
    case DataType.DOUBLE:
      return makeTensor('', elemType, dims, Float64Array.from(values));
    case DataType.FLOAT16: {
      const f = new Float32Array(values);
      const u = new Uint16Array(values.length);
      for (let i = 0; i < f.length; i++) u[i] = halfBits(f[i]);
      return makeTensor('', elemType, dims, u);
    }
    case DataType.INT8:
      return makeTensor('', elemType, dims, Int8Array.from(values));
    case DataType.UINT8:
      return makeTensor('', elemType, dims, Uint8Array.from(values));
    case DataType.INT16:
      return makeTensor('', elemType, dims, Int16Array.from(values));
    case DataType.UINT16:
      return makeTensor('', elemType, dims, Uint16Array.from(values));
    case DataType.INT32:
      return makeTensor('', elemType, dims, Int32Array.from(values));
    case DataType.UINT32:
      return makeTensor('', elemType, dims, Uint32Array.from(values));
    case DataType.INT64:
      return makeTensor('', elemType, dims, BigInt64Array.from(values.map((v) => BigInt(Math.trunc(v)))));
    case DataType.UINT64:
      return makeTensor('', elemType, dims, BigUint64Array.from(values.map((v) => BigInt(Math.trunc(v)))));
    default:
      return makeTensor('', DataType.FLOAT, dims, Float32Array.from(values));
  }
}

/** float32 → IEEE half bits (round to nearest even, overflow → ±Inf); for a handful of constants. */
function halfBits(x: number): number {
  const f = new Float32Array([x]);
  const b = new Uint32Array(f.buffer)[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = ((b >>> 23) & 0xff) - 127 + 15;
  let mant = b & 0x7fffff;
  if (((b >>> 23) & 0xff) === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - exp;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = (exp << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) r++;
  return sign | r;
}

/** Removes attributes by name; returns the removed ones by name. */
export function takeAttributes(node: NodeProto, ...names: string[]): Map<string, AttributeProto> {
  const taken = new Map<string, AttributeProto>();
  node.attribute = node.attribute.filter((a) => {
    if (a.name && names.includes(a.name)) {
      taken.set(a.name, a);
      return false;
    }
    return true;
  });
  return taken;
}

/** Sets input `i`, filling skipped optional inputs with '' (absent). */
export function setInput(node: NodeProto, i: number, value: string): void {
  while (node.input.length < i) node.input.push('');
  node.input[i] = value;
}

/** Replaces (or adds) an attribute. */
export function setAttribute(node: NodeProto, a: AttributeProto): void {
  node.attribute = node.attribute.filter((x) => x.name !== a.name);
  node.attribute.push(a);
}

export function stringAttr(a: AttributeProto | undefined): string | undefined {
  return a?.s ? Buffer.from(a.s).toString('utf8') : undefined;
}

/** A new node in the default domain named after the one it serves. */
export function helperNode(ctx: AdaptContext, of: NodeProto, opType: string, inputs: string[], outputs: string[], attributes: AttributeProto[] = []): NodeProto {
  return makeNode(opType, inputs, outputs, { name: ctx.names.unique(`${of.name || of.opType}_${opType}`), attributes });
}

export { makeAttribute };
