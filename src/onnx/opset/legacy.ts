/**
 * Changes of the early opsets, renamed ops and the experimental ops removed at opset 10:
 *
 *   Add, Sub, Mul, Div, Pow,
 *   And, Or, Xor, Equal,
 *   Greater, Less          7    `broadcast`/`axis` attributes → numpy broadcasting; a B aligned at
 *                               `axis` (not at the end) gets trailing 1-dims by Unsqueeze
 *   Gemm                   7    `broadcast` attribute dropped (C broadcasts unidirectionally)
 *   PRelu                  7    a 1-D slope [C] applied along axis 1 → Unsqueeze to [C, 1, …]
 *   Concat                 4    `axis` required (its old default was 1)
 *   Cast                   6    `to` went from a type name (string) to a type number
 *   LpPool, GlobalLpPool   2    `p` went from float to int
 *   Tile                   6    tiles/axis inputs → repeats: no equivalent without the input's rank
 *   Scan                   9    batch axis removed: not converted
 *   ImageScaler, Affine,
 *   ScaledTanh, Scale,
 *   ParametricSoftplus,
 *   DynamicSlice           10   removed (experimental): rewritten with Mul/Add/Tanh/Softplus/Slice
 *   ATen, ConstantFill,
 *   Crop, GRUUnit,
 *   GivenTensorFill        10   removed (experimental): no equivalent
 *   Scatter                11   deprecated: ScatterElements (same meaning)
 *   RoiAlign               16   coordinate_transformation_mode added; the old behaviour is
 *                               `output_half_pixel`, written out
 *   GridSample             20   modes bilinear/bicubic renamed linear/cubic
 */
import { DataType } from '../dtypes.js';
import { attrFloat, makeNode } from '../graph.js';
import type { NodeProto } from '../types.js';
import { helperNode, int64Tensor, makeAttribute, setAttribute, stringAttr, takeAttributes, typedTensor, Unconvertible, type AdaptContext, type Adapter } from './context.js';

const BROADCAST_OPS = ['Add', 'Sub', 'Mul', 'Div', 'Pow', 'And', 'Or', 'Xor', 'Equal', 'Greater', 'Less'];

/** An Unsqueeze in the target opset's form. */
function unsqueeze(ctx: AdaptContext, of: NodeProto, input: string, axes: number[]): NodeProto[] {
  const out = ctx.names.unique(`${input}_unsqueezed`);
  if (ctx.target >= 13) {
    const c = ctx.constant(`${out}_axes`, int64Tensor(axes));
    return [c.node, helperNode(ctx, of, 'Unsqueeze', [input, c.name], [out])];
  }
  return [helperNode(ctx, of, 'Unsqueeze', [input], [out], [makeAttribute('axes', axes, true)])];
}

function broadcast7(op: string): Adapter {
  return {
    op,
    to: 7,
    what: 'broadcast/axis attributes → numpy broadcasting',
    adapt(node, ctx) {
      const t = takeAttributes(node, 'broadcast', 'axis');
      const on = Number(t.get('broadcast')?.i ?? 0) === 1;
      const axisAttr = t.get('axis');
      if (!on || !axisAttr) return [node];
      const ra = ctx.rank(node.input[0]);
      const rb = ctx.rank(node.input[1]);
      if (ra === undefined || rb === undefined) throw new Unconvertible(`${op} with broadcast axis and inputs of unknown rank`);
      let axis = Number(axisAttr.i ?? 0);
      if (axis < 0) axis += ra;
      const trailing = ra - axis - rb;
      if (trailing <= 0) return [node];
      const nodes = unsqueeze(ctx, node, node.input[1], Array.from({ length: trailing }, (_, i) => rb + i));
      node.input[1] = nodes[nodes.length - 1].output[0];
      return [...nodes, node];
    },
  };
}

/** Replaces `node` by a chain of unary steps from its input to its output. */
function chain(ctx: AdaptContext, node: NodeProto, steps: ((x: string, y: string) => NodeProto[])[]): NodeProto[] {
  const out: NodeProto[] = [];
  let x = node.input[0];
  steps.forEach((step, i) => {
    const y = i === steps.length - 1 ? node.output[0] : ctx.names.unique(`${node.name || node.opType}_${i}`);
    out.push(...step(x, y));
    x = y;
  });
  return out;
}

/** y = x ∘ c for a constant c of x's type. */
function withConstant(ctx: AdaptContext, node: NodeProto, op: string, values: number[], dims: number[] = []) {
  return (x: string, y: string): NodeProto[] => {
    const c = ctx.constant(`${node.name || node.opType}_${op.toLowerCase()}`, typedTensor(ctx.elemType(node.input[0]) ?? DataType.FLOAT, values, dims));
    return [c.node, helperNode(ctx, node, op, [x, c.name], [y])];
  };
}

const unary = (ctx: AdaptContext, node: NodeProto, op: string) => (x: string, y: string) => [helperNode(ctx, node, op, [x], [y])];

function removed(op: string): Adapter {
  return {
    op,
    to: 10,
    what: 'removed',
    adapt() {
      throw new Unconvertible(`${op} is an experimental op removed in opset 10`);
    },
  };
}

export const legacyAdapters: Adapter[] = [
  ...BROADCAST_OPS.map(broadcast7),
  {
    op: 'Gemm',
    to: 7,
    what: 'broadcast attribute dropped',
    adapt(node) {
      takeAttributes(node, 'broadcast');
      return [node];
    },
  },
  {
    op: 'PRelu',
    to: 7,
    what: 'per-channel slope → unidirectional broadcasting',
    adapt(node, ctx) {
      // PRelu-6 applied a 1-D slope [C] along axis 1; from 7 on it broadcasts from the last axis.
      const slope = ctx.dims(node.input[1]);
      const rx = ctx.rank(node.input[0]);
      if (slope && slope.length === 1 && slope[0] === 1) return [node];
      if (slope && slope.length !== 1) return [node];
      if (rx === undefined || ctx.rank(node.input[1]) === undefined) throw new Unconvertible('PRelu-6 with a slope or input of unknown rank');
      if (rx <= 2) return [node];
      const nodes = unsqueeze(ctx, node, node.input[1], Array.from({ length: rx - 2 }, (_, i) => i + 1));
      node.input[1] = nodes[nodes.length - 1].output[0];
      return [...nodes, node];
    },
  },
  {
    op: 'Concat',
    to: 4,
    what: 'axis made explicit',
    adapt(node) {
      if (!node.attribute.some((a) => a.name === 'axis')) setAttribute(node, makeAttribute('axis', 1, true));
      return [node];
    },
  },
  {
    op: 'Cast',
    to: 6,
    what: 'to: type name → type number',
    adapt(node) {
      const to = node.attribute.find((a) => a.name === 'to');
      const name = stringAttr(to);
      if (name !== undefined) {
        const v = (DataType as Record<string, number>)[name.toUpperCase()];
        if (v === undefined) throw new Unconvertible(`Cast to unknown type "${name}"`);
        setAttribute(node, makeAttribute('to', v, true));
      }
      return [node];
    },
  },
  ...['LpPool', 'GlobalLpPool'].map(
    (op): Adapter => ({
      op,
      to: 2,
      what: 'p: float → int',
      adapt(node) {
        const p = node.attribute.find((a) => a.name === 'p');
        if (p && p.f !== undefined) setAttribute(node, makeAttribute('p', Math.round(p.f), true));
        return [node];
      },
    }),
  ),
  {
    op: 'Tile',
    to: 6,
    what: 'tiles/axis → repeats',
    adapt() {
      throw new Unconvertible('Tile-1 (tiles and axis inputs) has no equivalent without its input rank');
    },
  },
  {
    op: 'Scan',
    to: 9,
    what: 'batch axis removed',
    adapt() {
      throw new Unconvertible('Scan-8 (with a batch axis and sequence_lens) is not converted');
    },
  },
  {
    op: 'ImageScaler',
    to: 10,
    what: 'removed: → Mul, Add',
    adapt(node, ctx) {
      const scale = attrFloat(node, 'scale', 1);
      const bias = node.attribute.find((a) => a.name === 'bias')?.floats ?? [];
      return chain(ctx, node, [withConstant(ctx, node, 'Mul', [scale]), withConstant(ctx, node, 'Add', bias, [1, bias.length, 1, 1])]);
    },
  },
  {
    op: 'Affine',
    to: 10,
    what: 'removed: → Mul, Add',
    adapt(node, ctx) {
      return chain(ctx, node, [withConstant(ctx, node, 'Mul', [attrFloat(node, 'alpha', 1)]), withConstant(ctx, node, 'Add', [attrFloat(node, 'beta', 0)])]);
    },
  },
  {
    op: 'Scale',
    to: 10,
    what: 'removed: → Mul',
    adapt(node, ctx) {
      return chain(ctx, node, [withConstant(ctx, node, 'Mul', [attrFloat(node, 'scale', 1)])]);
    },
  },
  {
    op: 'ScaledTanh',
    to: 10,
    what: 'removed: → Mul, Tanh, Mul',
    adapt(node, ctx) {
      return chain(ctx, node, [withConstant(ctx, node, 'Mul', [attrFloat(node, 'beta', 1)]), unary(ctx, node, 'Tanh'), withConstant(ctx, node, 'Mul', [attrFloat(node, 'alpha', 1)])]);
    },
  },
  {
    op: 'ParametricSoftplus',
    to: 10,
    what: 'removed: → Mul, Softplus, Mul',
    adapt(node, ctx) {
      return chain(ctx, node, [withConstant(ctx, node, 'Mul', [attrFloat(node, 'beta', 1)]), unary(ctx, node, 'Softplus'), withConstant(ctx, node, 'Mul', [attrFloat(node, 'alpha', 1)])]);
    },
  },
  {
    op: 'DynamicSlice',
    to: 10,
    what: 'removed: → Slice',
    adapt(node) {
      return [makeNode('Slice', node.input.slice(), node.output.slice(), { ...(node.name !== undefined && { name: node.name }) })];
    },
  },
  ...['ATen', 'ConstantFill', 'Crop', 'GRUUnit', 'GivenTensorFill'].map(removed),
  {
    op: 'Scatter',
    to: 11,
    what: 'deprecated: → ScatterElements',
    adapt(node) {
      node.opType = 'ScatterElements';
      return [node];
    },
  },
  {
    op: 'RoiAlign',
    to: 16,
    what: 'coordinate_transformation_mode written (output_half_pixel)',
    adapt(node) {
      if (!node.attribute.some((a) => a.name === 'coordinate_transformation_mode')) setAttribute(node, makeAttribute('coordinate_transformation_mode', 'output_half_pixel'));
      return [node];
    },
  },
  {
    op: 'GridSample',
    to: 20,
    what: 'mode renamed',
    adapt(node) {
      const mode = stringAttr(node.attribute.find((a) => a.name === 'mode')) ?? 'bilinear';
      setAttribute(node, makeAttribute('mode', mode === 'bilinear' ? 'linear' : mode === 'bicubic' ? 'cubic' : mode));
      return [node];
    },
  },
];
