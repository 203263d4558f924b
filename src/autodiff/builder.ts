/**
 * GradBuilder: what gradient rules use to emit backward nodes — standard ONNX ops only (onnxruntime's
 * inference build has no training kernels; docs/facts.md) — with names that clash with nothing in the model.
 *
 * Shapes: rules read the shapes of forward values from a ShapeInfo measured by running the model
 * (shapes.ts). A dim is a number when it was the same in every probe run (fixed for this data) and
 * null when it changed (the batch axis). Ranks must be known; dims only where a rule wants them
 * static — everything else is computed at run time with Shape ops, so one training graph serves
 * every batch size.
 */
import { CompressError } from '../errors.js';
import { DataType } from '../onnx/dtypes.js';
import { makeAttribute, makeNode, type NameScope } from '../onnx/graph.js';
import { makeInt64Tensor, makeTensor, type TypedArray } from '../onnx/tensor.js';
import type { AttributeProto, NodeProto, TensorProto } from '../onnx/types.js';

export type Dim = number | null;
export interface ValueShape {
  dims: Dim[];
  /** onnxruntime's type name: 'float32', 'float64', 'int64', 'bool', … */
  type: string;
}
export type ShapeInfo = Map<string, ValueShape>;

export const INT64_MAX = 9223372036854775807n;

/** Attribute helpers: aInt('axis', 1), aInts('perm', [1, 0]), aFloat('alpha', 0.5). */
export const aInt = (name: string, v: number): AttributeProto => makeAttribute(name, v, true);
export const aInts = (name: string, v: number[]): AttributeProto => makeAttribute(name, v, true);
export const aFloat = (name: string, v: number): AttributeProto => makeAttribute(name, v);
export const aTensor = (name: string, t: TensorProto): AttributeProto => makeAttribute(name, t);
export const aStr = (name: string, v: string): AttributeProto => makeAttribute(name, v);

export class GradBuilder {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly cache = new Map<string, string>();

  constructor(
    private readonly scope: NameScope,
    readonly shapes: ShapeInfo,
    /** Element type of the float values being differentiated (FLOAT or DOUBLE). */
    readonly floatType: number,
    readonly opset: number,
    /** The values of constant tensors (initializers, Constant nodes) of the forward graph, by name. */
    private readonly constants: (name: string) => TypedArray | undefined = () => undefined,
  ) {}

  /** A forward constant (axes, pads, …) as numbers, or undefined when it is computed at run time. */
  constantInts(name: string | undefined): number[] | undefined {
    if (!name) return undefined;
    const v = this.constants(name);
    return v ? Array.from(v as ArrayLike<number | bigint>, Number) : undefined;
  }

  /** Records the shape of a value the backward pass made, for rules that read it (unbroadcast). */
  declare(name: string, dims: Dim[]): string {
    this.shapes.set(name, { dims, type: this.floatType === DataType.DOUBLE ? 'float64' : 'float32' });
    return name;
  }

  name(base: string): string {
    return this.scope.unique(`grad/${base}`);
  }

  /** Emits one node and returns its (first) output. */
  op(type: string, inputs: string[], attrs: AttributeProto[] = [], hint = type): string {
    return this.opN(type, inputs, 1, attrs, hint)[0];
  }

  opN(type: string, inputs: string[], outputs: number, attrs: AttributeProto[] = [], hint = type): string[] {
    const names = Array.from({ length: outputs }, (_, i) => this.name(`${hint}${outputs > 1 ? `_${i}` : ''}`));
    this.nodes.push(makeNode(type, inputs, names, { name: this.name(`${type}_node`), attributes: attrs }));
    return names;
  }

  private constant(key: string, make: (name: string) => TensorProto): string {
    let name = this.cache.get(key);
    if (!name) {
      name = this.name('const');
      this.initializers.push(make(name));
      this.cache.set(key, name);
    }
    return name;
  }

  /** A float constant of the graph's float type (0-d unless dims are given). */
  floats(values: number[], dims: number[] = []): string {
    return this.constant(`f${this.floatType}:${dims.join('x')}:${values.join(',')}`, (name) =>
      makeTensor(name, this.floatType, dims, this.floatType === DataType.DOUBLE ? Float64Array.from(values) : Float32Array.from(values)),
    );
  }

  scalar(v: number): string {
    return this.floats([v]);
  }

  /** A 1-d int64 constant. */
  ints(values: number[]): string {
    return this.constant(`i:${values.join(',')}`, (name) => makeInt64Tensor(name, values));
  }

  /** A 0-d int64 constant. */
  int(v: number): string {
    return this.constant(`i0:${v}`, (name) => makeInt64Tensor(name, [v], []));
  }

  /** A 1-d int64 constant with raw bigints (INT64_MAX ends). */
  bigints(values: bigint[]): string {
    return this.constant(`b:${values.join(',')}`, (name) => makeTensor(name, DataType.INT64, [values.length], BigInt64Array.from(values)));
  }

  /** A float tensor attribute value (ConstantOfShape's `value`). */
  floatTensor(v: number): TensorProto {
    return makeTensor('value', this.floatType, [1], this.floatType === DataType.DOUBLE ? Float64Array.of(v) : Float32Array.of(v));
  }

  dims(v: string): Dim[] | undefined {
    return this.shapes.get(v)?.dims;
  }

  rank(v: string): number {
    const d = this.dims(v);
    if (!d) throw new CompressError('compress', `autodiff: the shape of "${v}" is unknown (it was not seen by the shape probe)`);
    return d.length;
  }

  /** Dims when every one is fixed, else undefined. */
  staticDims(v: string): number[] | undefined {
    const d = this.dims(v);
    return d && d.every((x) => x !== null) ? (d as number[]) : undefined;
  }

  /** v's shape as a 1-d int64 value: a constant when fixed, else Shape(v) (one per value). */
  shape(v: string): string {
    const fixed = this.staticDims(v);
    if (fixed) return this.ints(fixed);
    const key = `shape:${v}`;
    let s = this.cache.get(key);
    if (!s) {
      s = this.op('Shape', [v]);
      this.cache.set(key, s);
    }
    return s;
  }

  /** Dims [start, end) of v's shape as a 1-d int64 value. */
  shapeSlice(v: string, start: number, end: number): string {
    const d = this.dims(v);
    const part = d?.slice(start, end);
    if (part && part.every((x) => x !== null)) return this.ints(part as number[]);
    return this.op('Slice', [this.shape(v), this.ints([start]), this.ints([end]), this.ints([0])]);
  }

  reshape(x: string, shape: string): string {
    return this.op('Reshape', [x, shape]);
  }

  /** Reshape g to v's shape. */
  reshapeLike(g: string, v: string): string {
    return this.reshape(g, this.shape(v));
  }

  /** ReduceSum over fixed axes (none: x itself). Opset ≥ 13: axes are an input. */
  reduceSum(x: string, axes: number[], keepdims: boolean): string {
    if (axes.length === 0) return x;
    return this.op('ReduceSum', [x, this.ints(axes)], [aInt('keepdims', keepdims ? 1 : 0)]);
  }

  /** ReduceMean over fixed axes: an attribute before opset 18, an input from 18. */
  reduceMean(x: string, axes: number[], keepdims: boolean): string {
    if (axes.length === 0) return x;
    if (this.opset >= 18) return this.op('ReduceMean', [x, this.ints(axes)], [aInt('keepdims', keepdims ? 1 : 0)]);
    return this.op('ReduceMean', [x], [aInts('axes', axes), aInt('keepdims', keepdims ? 1 : 0)]);
  }

  transpose(x: string, perm: number[]): string {
    if (perm.every((p, i) => p === i)) return x;
    return this.op('Transpose', [x], [aInts('perm', perm)]);
  }

  unsqueeze(x: string, axes: number[]): string {
    if (axes.length === 0) return x;
    return this.op('Unsqueeze', [x, this.ints(axes)]);
  }

  /** Zeros shaped like v, of the float type. */
  zerosLike(v: string): string {
    return this.op('ConstantOfShape', [this.shape(v)], [aTensor('value', this.floatTensor(0))]);
  }

  /** Size(x) / Size(y) as a 0-d float (the count a mean divides by): fixed when both are. */
  sizeRatio(x: string, y: string): string {
    const dx = this.staticDims(x);
    const dy = this.staticDims(y);
    if (dx && dy) return this.scalar(dx.reduce((a, b) => a * b, 1) / dy.reduce((a, b) => a * b, 1));
    const ratio = this.op('Div', [this.op('Size', [x]), this.op('Size', [y])]);
    return this.op('Cast', [ratio], [aInt('to', this.floatType)]);
  }

  /**
   * Sums a gradient g (shaped like the forward value `gLike`) down to the shape of operand `to` —
   * the reverse of numpy broadcasting: leading axes that `to` lacks, and axes where `to` has 1.
   * With the shapes of both known the axes are fixed; otherwise they are found at run time.
   */
  unbroadcast(g: string, gLike: string, to: string): string {
    const gd = this.dims(gLike);
    const td = this.dims(to);
    if (gd && td) {
      const lead = gd.length - td.length;
      if (lead < 0) throw new CompressError('compress', `autodiff: "${to}" has a higher rank than the result "${gLike}" it broadcasts to`);
      const summed = this.reduceSum(g, range(lead), false);
      const axes = td.flatMap((d, i) => (d === 1 && gd[lead + i] !== 1 ? [i] : []));
      return this.reduceSum(summed, axes, true);
    }
    return this.unbroadcastDynamic(g, to);
  }

  /** Run-time broadcast reduction: leading axes by rank difference, then every axis where `to` is 1. */
  private unbroadcastDynamic(g: string, to: string): string {
    const gShape = this.op('Shape', [g]);
    const tShape = this.op('Shape', [to]);
    const lead = this.op('Sub', [this.op('Size', [gShape]), this.op('Size', [tShape])]);
    const leadAxes = this.op('Range', [this.int(0), lead, this.int(1)]);
    const summed = this.op('ReduceSum', [g, leadAxes], [aInt('keepdims', 0), aInt('noop_with_empty_axes', 1)]);
    const ones = this.op('Equal', [tShape, this.ints([1])]);
    const axes = this.reshape(this.op('NonZero', [ones]), this.ints([-1]));
    const reduced = this.op('ReduceSum', [summed, axes], [aInt('keepdims', 1), aInt('noop_with_empty_axes', 1)]);
    return this.reshape(reduced, tShape);
  }

  /** Adds up gradient contributions (one: itself). */
  sum(parts: string[]): string {
    return parts.length === 1 ? parts[0] : this.op('Sum', parts);
  }
}

export function range(n: number, start = 0): number[] {
  return Array.from({ length: Math.max(0, n - start) }, (_, i) => start + i);
}

/** A possibly negative axis as a non-negative one. */
export function normAxis(axis: number, rank: number): number {
  return axis < 0 ? axis + rank : axis;
}
