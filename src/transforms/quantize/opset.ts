/**
 * Raising a model's default-domain opset to 21 (and IR version to 10), which 4-bit DequantizeLinear
 * (INT4/UINT4 and `block_size`) needs. Only done when every node keeps its meaning:
 *
 * - from opset ≥ 13 only (Squeeze/Unsqueeze/Split/ReduceSum took their axes as inputs from 13 on);
 * - Reduce{Mean,Max,Min,Prod,L1,L2,LogSum,LogSumExp,SumSquare} with an `axes` attribute (< 18): the
 *   attribute becomes a constant input, as opset 18 wants;
 * - Split without a `split` input (< 18): gets `num_outputs`, which opset 18 requires;
 * - GridSample (< 20): modes `bilinear`/`bicubic` were renamed `linear`/`cubic`;
 * - refused: DFT (< 20, axis became an input) and GroupNormalization (< 21, scale/bias changed from
 *   per-group to per-channel).
 * Everything else changed between 13 and 21 only by gaining types or optional attributes.
 */
import { attribute, makeAttribute, makeNode, opsetVersion, type NameScope } from '../../onnx/graph.js';
import { makeInt64Tensor } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto } from '../../onnx/types.js';
import { allGraphs } from '../../onnx/walk.js';

const REDUCE_18 = new Set(['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']);

/** Why the default opset cannot become 21, or undefined when it can (or already is ≥ 21). */
export function opset21Blocker(model: ModelProto): string | undefined {
  const v = opsetVersion(model, '') ?? 1;
  if (v >= 21) return undefined;
  if (v < 13) return `the model imports opset ${v} (< 13)`;
  for (const g of allGraphs(model)) {
    for (const n of g.node) {
      if ((n.domain ?? '') !== '') continue;
      if (n.opType === 'DFT' && v < 20) return 'it has a DFT node (its axis became an input in opset 20)';
      if (n.opType === 'GroupNormalization') return 'it has a GroupNormalization node (its scale/bias changed meaning in opset 21)';
    }
  }
  return undefined;
}

/** Raises the default opset to 21 (see the file comment); call only when opset21Blocker says nothing. */
export function raiseToOpset21(model: ModelProto, names: NameScope): void {
  const v = opsetVersion(model, '') ?? 1;
  if (v >= 21) return;
  for (const g of allGraphs(model)) {
    const out: NodeProto[] = [];
    for (const n of g.node) {
      if ((n.domain ?? '') === '') {
        if (REDUCE_18.has(n.opType ?? '') && v < 18) {
          const axes = attribute(n, 'axes');
          if (axes) {
            const name = names.unique(`${n.name || n.opType}_axes`);
            out.push(makeNode('Constant', [], [name], { name: names.unique(`${name}_const`), attributes: [makeAttribute('value', makeInt64Tensor(name, axes.ints.map(Number)))] }));
            n.attribute = n.attribute.filter((a) => a !== axes);
            while (n.input.length < 1) n.input.push('');
            n.input[1] = name;
          }
        } else if (n.opType === 'Split' && v < 18 && !(n.input[1] ?? '')) {
          if (!attribute(n, 'num_outputs')) n.attribute.push(makeAttribute('num_outputs', n.output.length, true));
        } else if (n.opType === 'GridSample' && v < 20) {
          const mode = attribute(n, 'mode');
          const text = mode?.s ? Buffer.from(mode.s).toString('utf8') : 'bilinear';
          const renamed = text === 'bilinear' ? 'linear' : text === 'bicubic' ? 'cubic' : text;
          n.attribute = n.attribute.filter((a) => a !== mode);
          n.attribute.push(makeAttribute('mode', renamed));
        }
      }
      out.push(n);
    }
    g.node = out;
  }
  const entry = model.opsetImport.find((o) => (o.domain ?? '') === '' || o.domain === 'ai.onnx');
  if (entry) entry.version = 21;
  else model.opsetImport.push({ domain: '', version: 21 });
  if (model.irVersion === undefined || Number(model.irVersion) < 10) model.irVersion = 10;
}
