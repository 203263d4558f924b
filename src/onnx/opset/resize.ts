/**
 * Upsample and Resize:
 *
 *   Upsample-1  → 7    height_scale/width_scale attributes → scales attribute [1, 1, h, w]
 *   Upsample-7  → 9    scales attribute → input 1 (float)
 *   Upsample-9  → 10   deprecated: becomes Resize-10 (same inputs X, scales; same mode)
 *   Resize-10   → 11   inputs become X, roi, scales; coordinate_transformation_mode defaulted to
 *                      half_pixel from 11 on, while 10 (and Upsample) map asymmetrically, so
 *                      `asymmetric` is written; nearest rounding becomes explicit: onnxruntime's
 *                      opset-10 kernel floors when upsampling and rounds up when downsampling.
 *
 * (onnx's own converter leaves the coordinate mode at its new default, which changes the outputs.)
 */
import { DataType } from '../dtypes.js';
import { makeNode } from '../graph.js';
import type { NodeProto } from '../types.js';
import { makeAttribute, setAttribute, stringAttr, takeAttributes, typedTensor, Unconvertible, type Adapter } from './context.js';

export const resizeAdapters: Adapter[] = [
  {
    op: 'Upsample',
    to: 7,
    what: 'height_scale/width_scale → scales',
    adapt(node) {
      const t = takeAttributes(node, 'height_scale', 'width_scale');
      const h = t.get('height_scale')?.f;
      const w = t.get('width_scale')?.f;
      if (h === undefined || w === undefined) throw new Unconvertible('Upsample-1 without height_scale/width_scale');
      setAttribute(node, makeAttribute('scales', [1, 1, h, w]));
      return [node];
    },
  },
  {
    op: 'Upsample',
    to: 9,
    what: 'scales attribute → input',
    adapt(node, ctx) {
      const scales = takeAttributes(node, 'scales').get('scales');
      if (!scales) throw new Unconvertible('Upsample-7 without scales');
      const c = ctx.constant(`${node.name || 'Upsample'}_scales`, typedTensor(DataType.FLOAT, scales.floats));
      node.input[1] = c.name;
      return [c.node, node];
    },
  },
  {
    op: 'Upsample',
    to: 10,
    what: 'deprecated: → Resize',
    adapt(node) {
      const mode = stringAttr(node.attribute.find((a) => a.name === 'mode')) ?? 'nearest';
      const resize = makeNode('Resize', node.input.slice(0, 2), node.output.slice(), { ...(node.name !== undefined && { name: node.name }), attributes: [makeAttribute('mode', mode)] });
      return [resize];
    },
  },
  {
    op: 'Resize',
    to: 11,
    what: 'roi input added, asymmetric coordinates kept',
    adapt(node, ctx) {
      const scales = node.input[1] ?? '';
      const out: NodeProto[] = [];
      let roi = '';
      if (ctx.target < 13) {
        // Resize 11/12 require the roi input; it is read only by tf_crop_and_resize.
        const c = ctx.constant(`${node.name || 'Resize'}_roi`, typedTensor(DataType.FLOAT, [], [0]));
        out.push(c.node);
        roi = c.name;
      }
      node.input = [node.input[0], roi, scales];
      const mode = stringAttr(node.attribute.find((a) => a.name === 'mode')) ?? 'nearest';
      setAttribute(node, makeAttribute('coordinate_transformation_mode', 'asymmetric'));
      if (mode === 'nearest') setAttribute(node, makeAttribute('nearest_mode', nearestMode(ctx.constantValues(scales))));
      out.push(node);
      return out;
    },
  },
];

/** Opset-10 nearest rounding in onnxruntime: floor when upsampling, ceil when downsampling. */
function nearestMode(scales: number[] | undefined): string {
  if (scales && scales.length && scales.every((s) => s <= 1) && scales.some((s) => s < 1)) return 'ceil';
  return 'floor';
}
