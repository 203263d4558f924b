/**
 * Embedding tables as com.microsoft GatherBlockQuantized (ONNX Runtime contrib op), which gathers rows
 * and dequantizes only those:
 *
 *   data         [V, D]: INT4 / UINT4 (two per byte, even element low nibble), or UINT8 with bits = 8
 *   indices      the Gather's indices
 *   scales       float [V, ceil(D / block)]
 *   zero_points  optional, data's type, [V, ceil(D / block)] (4-bit packed like data); defaults 0, so
 *                unsigned data always carries them
 *   attributes   gather_axis = 0, quantize_axis = 1 (the last), block_size, bits (8 for UINT8 data)
 *
 * The onnxruntime-web wasm backend and the WebGPU EP run it (docs/facts.md, "Quantized graph forms").
 */
import { DataType } from '../../onnx/dtypes.js';
import { makeAttribute, makeNode } from '../../onnx/graph.js';
import { makeTensor } from '../../onnx/tensor.js';
import { codeBytes, codeType, dtypeName, zeroIsDefault, type Emitted } from './dq.js';
import type { GraphEdits } from './edits.js';
import type { Plan } from './forms.js';
import type { Target } from './select.js';
import { rowsView, type WeightQuant } from './weights.js';

export function emitGatherBlockQuantized(t: Target, plan: Plan, q: WeightQuant, edits: GraphEdits): Emitted {
  const block = plan.opBlock!;
  const v = rowsView(q, 1, block);
  const [V, D] = t.shape;
  const nb = Math.ceil(D / block);
  // 8-bit data must be UINT8 (bits = 8); 4-bit keeps its signedness.
  const signed = q.bits === 4 && plan.signed;
  const type = q.bits === 8 ? DataType.UINT8 : codeType(4, signed);
  let bytes = 0;
  const add = (suffix: string, dt: number, dims: number[], data: Uint8Array | Float32Array) => {
    const tensor = makeTensor('', dt, dims, data);
    bytes += tensor.rawData!.length;
    return edits.addTensor(t.site, `${t.weight}_${suffix}`, tensor);
  };
  const inputs = ['', '', ''];
  inputs[0] = add('quantized', type, [V, D], codeBytes(v.codes, q.bits, signed));
  inputs[2] = add('scales', DataType.FLOAT, [V, nb], v.scales);
  if (!zeroIsDefault(v.zeros, q.bits, signed)) inputs.push(add('zero_points', type, [V, nb], codeBytes(v.zeros, q.bits, signed)));
  for (const u of t.uses) {
    const n = u.node;
    const attributes = [makeAttribute('gather_axis', 0, true), makeAttribute('quantize_axis', 1, true), makeAttribute('block_size', block, true)];
    if (q.bits === 8) attributes.push(makeAttribute('bits', 8, true));
    const ins = inputs.slice();
    ins[1] = n.input[1];
    edits.replace(u.graph, n, [makeNode('GatherBlockQuantized', ins, [n.output[0]], { name: n.name || edits.names.unique(`${t.weight}_GatherBlockQuantized`), domain: 'com.microsoft', attributes })]);
  }
  edits.removeWeight(t.site);
  return { bytesAfter: bytes, dtypeAfter: dtypeName(q.bits, signed) };
}
