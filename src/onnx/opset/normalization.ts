/**
 * Normalizations and the coerce-to-2-D softmax family:
 *
 *   BatchNormalization  7    is_test dropped (inference form kept)
 *   BatchNormalization  9    spatial dropped; spatial = 0 (per-element statistics) has no equivalent
 *   BatchNormalization  14   at most 3 outputs: the training outputs (saved mean/variance) are dropped
 *                            when nothing reads them
 *   GroupNormalization  21   scale/bias went from one value per group to one per channel: each is
 *                            repeated C/G times (Reshape [-1,1] → Expand [1, C/G] → Reshape [-1])
 *   Softmax, LogSoftmax,
 *   Hardmax             13   `axis` stopped meaning "flatten to 2-D at axis, normalize each row" and
 *                            became one axis: written as Flatten(axis) → op(axis=-1) → Reshape(Shape(x)),
 *                            or just axis = -1 when the input's rank says axis is the last one
 */
import { attrInt } from '../graph.js';
import type { NodeProto } from '../types.js';
import { helperNode, int64Tensor, makeAttribute, setAttribute, takeAttributes, Unconvertible, type Adapter } from './context.js';

function softmax13(op: string): Adapter {
  return {
    op,
    to: 13,
    what: 'axis semantics: coerce-to-2-D → one axis',
    adapt(node, ctx) {
      const rank = ctx.rank(node.input[0]);
      let axis = attrInt(node, 'axis', 1);
      if (rank !== undefined && axis < 0) axis += rank;
      if (rank !== undefined && axis === rank - 1) {
        setAttribute(node, makeAttribute('axis', -1, true));
        return [node];
      }
      const x = node.input[0];
      const base = node.name || op;
      const flat = ctx.names.unique(`${base}_flat`);
      const shape = ctx.names.unique(`${base}_shape`);
      const rows = ctx.names.unique(`${base}_2d`);
      const out = node.output[0];
      const nodes: NodeProto[] = [
        helperNode(ctx, node, 'Shape', [x], [shape]),
        helperNode(ctx, node, 'Flatten', [x], [flat], [makeAttribute('axis', axis, true)]),
      ];
      node.input[0] = flat;
      node.output[0] = rows;
      setAttribute(node, makeAttribute('axis', -1, true));
      nodes.push(node, helperNode(ctx, node, 'Reshape', [rows, shape], [out]));
      return nodes;
    },
  };
}

export const normalizationAdapters: Adapter[] = [
  {
    op: 'BatchNormalization',
    to: 7,
    what: 'is_test attribute dropped',
    adapt(node) {
      takeAttributes(node, 'is_test');
      return [node];
    },
  },
  {
    op: 'BatchNormalization',
    to: 9,
    what: 'spatial attribute dropped',
    adapt(node) {
      const spatial = takeAttributes(node, 'spatial').get('spatial');
      if (spatial && Number(spatial.i ?? 1) === 0) throw new Unconvertible('BatchNormalization with spatial=0 (per-element statistics) has no equivalent from opset 9 on');
      return [node];
    },
  },
  {
    op: 'BatchNormalization',
    to: 14,
    what: 'unread training outputs dropped',
    adapt(node, ctx) {
      const extra = node.output.slice(1).filter((o) => o !== '');
      if (extra.some((o) => ctx.isRead(o))) throw new Unconvertible('BatchNormalization whose running/saved statistics outputs are read (training mode)');
      node.output = node.output.slice(0, 1);
      return [node];
    },
  },
  {
    op: 'GroupNormalization',
    to: 21,
    what: 'per-group scale/bias → per-channel',
    adapt(node, ctx) {
      const groups = attrInt(node, 'num_groups', 0);
      if (!groups) throw new Unconvertible('GroupNormalization without num_groups');
      const base = node.name || 'GroupNormalization';
      const nodes: NodeProto[] = [];
      const c = ctx.names.unique(`${base}_channels`);
      nodes.push(helperNode(ctx, node, 'Shape', [node.input[0]], [c], [makeAttribute('start', 1, true), makeAttribute('end', 2, true)]));
      const g = ctx.constant(`${base}_groups`, int64Tensor([groups]));
      const one = ctx.constant(`${base}_one`, int64Tensor([1]));
      const col = ctx.constant(`${base}_column`, int64Tensor([-1, 1]));
      const flat = ctx.constant(`${base}_flat`, int64Tensor([-1]));
      nodes.push(g.node, one.node, col.node, flat.node);
      const per = ctx.names.unique(`${base}_per_group`);
      const expandShape = ctx.names.unique(`${base}_expand_shape`);
      nodes.push(helperNode(ctx, node, 'Div', [c, g.name], [per]), helperNode(ctx, node, 'Concat', [one.name, per], [expandShape], [makeAttribute('axis', 0, true)]));
      for (const i of [1, 2]) {
        const v = node.input[i];
        if (!v) continue;
        const a = ctx.names.unique(`${v}_column`);
        const b = ctx.names.unique(`${v}_expanded`);
        const out = ctx.names.unique(`${v}_per_channel`);
        nodes.push(helperNode(ctx, node, 'Reshape', [v, col.name], [a]), helperNode(ctx, node, 'Expand', [a, expandShape], [b]), helperNode(ctx, node, 'Reshape', [b, flat.name], [out]));
        node.input[i] = out;
      }
      nodes.push(node);
      return nodes;
    },
  },
  softmax13('Softmax'),
  softmax13('LogSoftmax'),
  softmax13('Hardmax'),
];
