/**
 * The distillation loss, appended to the student as ONNX nodes so the autodiff differentiates it
 * with the rest (teacher logits and labels are extra graph inputs, fed each step):
 *
 *   kd = T² · mean over rows of KL(softmax(t/T) ‖ softmax(s/T))
 *      = T² · mean Σ_c p_c · (log p_c − log q_c),   p = softmax(t/T), q = softmax(s/T)
 *   ce = − mean Σ_c onehot_c · log softmax(s)_c     (rows without a label are all-zero: no term)
 *   loss = kd                      without labels
 *        = ½·kd + ½·ce             with labels (Hinton et al. 2015 weigh both; T² keeps the soft
 *                                  term's gradient on the scale of the hard one)
 *
 * Classes are the last axis of the logits; every other axis is a row.
 */
import { DataType } from '../../onnx/dtypes.js';
import { extendGraph, floatValue } from '../../onnx/edit.js';
import { makeAttribute, makeNode, NameScope } from '../../onnx/graph.js';
import { makeInt64Tensor, makeTensor } from '../../onnx/tensor.js';
import type { ModelProto, NodeProto, TensorProto } from '../../onnx/types.js';

export interface KdLoss {
  model: ModelProto;
  loss: string;
  teacherInput: string;
  labelInput?: string;
  kd: string;
  ce?: string;
}

export function appendKdLoss(model: ModelProto, opts: { logits: string; temperature: number; labels: boolean }): KdLoss {
  const scope = new NameScope(model);
  const name = (base: string) => scope.unique(`kd/${base}`);
  const nodes: NodeProto[] = [];
  const inits: TensorProto[] = [];
  const op = (type: string, inputs: string[], attrs: [string, number][] = []): string => {
    const out = name(type);
    nodes.push(makeNode(type, inputs, [out], { name: name(`${type}_node`), attributes: attrs.map(([k, v]) => makeAttribute(k, v, true)) }));
    return out;
  };
  const scalar = (v: number) => {
    const n = name('const');
    inits.push(makeTensor(n, DataType.FLOAT, [], Float32Array.of(v)));
    return n;
  };
  const lastAxis = name('axes');
  inits.push(makeInt64Tensor(lastAxis, [-1]));
  const T = opts.temperature;
  const rowSum = (x: string) => op('ReduceSum', [x, lastAxis], [['keepdims', 0]]);
  const mean = (x: string) => op('ReduceMean', [x], [['keepdims', 0]]);

  const teacherInput = name('teacher_logits');
  const logP = op('LogSoftmax', [op('Mul', [teacherInput, scalar(1 / T)])], [['axis', -1]]);
  const logQ = op('LogSoftmax', [op('Mul', [opts.logits, scalar(1 / T)])], [['axis', -1]]);
  const kl = rowSum(op('Mul', [op('Exp', [logP]), op('Sub', [logP, logQ])]));
  const kd = op('Mul', [mean(kl), scalar(T * T)]);
  let loss = kd;
  let labelInput: string | undefined;
  let ce: string | undefined;
  if (opts.labels) {
    labelInput = name('labels_onehot');
    const logSm = op('LogSoftmax', [opts.logits], [['axis', -1]]);
    ce = op('Neg', [mean(rowSum(op('Mul', [labelInput, logSm])))]);
    loss = op('Add', [op('Mul', [kd, scalar(0.5)]), op('Mul', [ce, scalar(0.5)])]);
  }
  const out = extendGraph(model, {
    nodes,
    initializers: inits,
    inputs: [floatValue(teacherInput), ...(labelInput ? [floatValue(labelInput)] : [])],
    outputs: [loss],
  });
  return { model: out, loss, teacherInput, labelInput, kd, ce };
}
