/**
 * Attributes that became inputs (and inputs that became attributes), op by op:
 *
 *   op                          at   change
 *   Reshape                     5    shape attribute → input 1 (int64)
 *   Slice                       10   starts/ends/axes attributes → inputs 1..3 (int64)
 *   TopK                        10   k attribute → input 1 (int64 [1])
 *   Clip                        11   min/max attributes → inputs 1, 2 (the data's type; absent = unbounded)
 *   Pad                         11   pads (Pad-1: paddings) → input 1, value → input 2 (data's type)
 *   Dropout                     12   ratio attribute → input 1 (float scalar); is_test dropped at 7
 *   Squeeze, Unsqueeze          13   axes attribute → input 1
 *   ReduceSum                   13   axes attribute → input 1 (absent = all axes, as before)
 *   Split                       13   split attribute → input 1; at 18 num_outputs is required
 *                                     when no split input is given
 *   Reduce{Mean,Max,Min,Prod,
 *     L1,L2,LogSum,LogSumExp,
 *     SumSquare}                18   axes attribute → input 1
 *   DFT                         20   axis attribute → input 2 (its default moved from 1 to -2, so
 *                                     the old default is written out)
 */
import { DataType } from '../dtypes.js';
import type { NodeProto } from '../types.js';
import { int64Tensor, makeAttribute, setAttribute, setInput, takeAttributes, typedTensor, Unconvertible, type AdaptContext, type Adapter } from './context.js';

/** Moves an int list attribute to input `index` as an int64 Constant; nothing when absent. */
function intsToInput(node: NodeProto, ctx: AdaptContext, attr: string, index: number, before: NodeProto[]): boolean {
  const a = takeAttributes(node, attr).get(attr);
  if (!a) return false;
  const c = ctx.constant(`${node.name || node.opType}_${attr}`, int64Tensor(a.ints));
  before.push(c.node);
  setInput(node, index, c.name);
  return true;
}

const axesToInput = (op: string, to: number): Adapter => ({
  op,
  to,
  what: 'axes attribute → input',
  adapt(node, ctx) {
    const before: NodeProto[] = [];
    intsToInput(node, ctx, 'axes', 1, before);
    return [...before, node];
  },
});

const REDUCE_18 = ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare'];

export const inputAdapters: Adapter[] = [
  {
    op: 'Reshape',
    to: 5,
    what: 'shape attribute → input',
    adapt(node, ctx) {
      const before: NodeProto[] = [];
      if (!intsToInput(node, ctx, 'shape', 1, before)) throw new Unconvertible('Reshape-1 without a shape attribute');
      return [...before, node];
    },
  },
  {
    op: 'Slice',
    to: 10,
    what: 'starts/ends/axes attributes → inputs',
    adapt(node, ctx) {
      const before: NodeProto[] = [];
      intsToInput(node, ctx, 'starts', 1, before);
      intsToInput(node, ctx, 'ends', 2, before);
      intsToInput(node, ctx, 'axes', 3, before);
      return [...before, node];
    },
  },
  {
    op: 'TopK',
    to: 10,
    what: 'k attribute → input',
    adapt(node, ctx) {
      const k = takeAttributes(node, 'k').get('k');
      if (!k) throw new Unconvertible('TopK-1 without k');
      const c = ctx.constant(`${node.name || 'TopK'}_k`, int64Tensor([k.i ?? 0], [1]));
      setInput(node, 1, c.name);
      return [c.node, node];
    },
  },
  {
    op: 'Clip',
    to: 11,
    what: 'min/max attributes → inputs',
    adapt(node, ctx) {
      const taken = takeAttributes(node, 'min', 'max');
      const type = ctx.elemType(node.input[0]) ?? DataType.FLOAT;
      const before: NodeProto[] = [];
      for (const [i, name] of [[1, 'min'], [2, 'max']] as const) {
        const a = taken.get(name);
        if (!a) continue;
        const c = ctx.constant(`${node.name || 'Clip'}_${name}`, typedTensor(type, [a.f ?? 0], []));
        before.push(c.node);
        setInput(node, i, c.name);
      }
      return [...before, node];
    },
  },
  {
    op: 'Pad',
    to: 11,
    what: 'pads/value attributes → inputs',
    adapt(node, ctx) {
      const taken = takeAttributes(node, 'pads', 'paddings', 'value');
      const pads = taken.get('pads') ?? taken.get('paddings');
      if (!pads) throw new Unconvertible('Pad without pads');
      const before: NodeProto[] = [];
      const p = ctx.constant(`${node.name || 'Pad'}_pads`, int64Tensor(pads.ints));
      before.push(p.node);
      setInput(node, 1, p.name);
      const value = taken.get('value')?.f ?? 0;
      if (value !== 0) {
        const v = ctx.constant(`${node.name || 'Pad'}_value`, typedTensor(ctx.elemType(node.input[0]) ?? DataType.FLOAT, [value], []));
        before.push(v.node);
        setInput(node, 2, v.name);
      }
      return [...before, node];
    },
  },
  {
    op: 'Dropout',
    to: 7,
    what: 'is_test attribute dropped',
    adapt(node) {
      takeAttributes(node, 'is_test');
      return [node];
    },
  },
  {
    op: 'Dropout',
    to: 12,
    what: 'ratio attribute → input',
    adapt(node, ctx) {
      const ratio = takeAttributes(node, 'ratio').get('ratio');
      if (!ratio) return [node];
      const c = ctx.constant(`${node.name || 'Dropout'}_ratio`, typedTensor(DataType.FLOAT, [ratio.f ?? 0.5], []));
      setInput(node, 1, c.name);
      return [c.node, node];
    },
  },
  axesToInput('Squeeze', 13),
  axesToInput('Unsqueeze', 13),
  axesToInput('ReduceSum', 13),
  ...REDUCE_18.map((op) => axesToInput(op, 18)),
  {
    op: 'Split',
    to: 2,
    what: 'split input → attribute',
    adapt(node, ctx) {
      // Split-1 took the sizes as an optional input; from 13 on it is an input again.
      if ((node.input[1] ?? '') !== '' && ctx.target < 13) throw new Unconvertible('Split-1 with a split input needs opset ≥ 13');
      return [node];
    },
  },
  {
    op: 'Split',
    to: 13,
    what: 'split attribute → input',
    adapt(node, ctx) {
      const before: NodeProto[] = [];
      intsToInput(node, ctx, 'split', 1, before);
      return [...before, node];
    },
  },
  {
    op: 'Split',
    to: 18,
    what: 'num_outputs set (required without a split input)',
    adapt(node) {
      if ((node.input[1] ?? '') === '' && !node.attribute.some((a) => a.name === 'num_outputs')) setAttribute(node, makeAttribute('num_outputs', node.output.length, true));
      return [node];
    },
  },
  {
    op: 'DFT',
    to: 20,
    what: 'axis attribute → input',
    adapt(node, ctx) {
      const axis = takeAttributes(node, 'axis').get('axis');
      const c = ctx.constant(`${node.name || 'DFT'}_axis`, int64Tensor([axis?.i ?? 1], []));
      setInput(node, 2, c.name);
      return [c.node, node];
    },
  },
];
