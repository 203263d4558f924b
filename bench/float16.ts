/**
 * float32 → float16 throughput: ours (float32ArrayToFloat16) vs onnxruntime-node's Cast on the
 * same 100 M weight-like values, median of 5 runs each.   npx tsx bench/float16.ts [count]
 */
import * as ort from 'onnxruntime-node';
import { float32ArrayToFloat16 } from '../src/onnx/float16.js';

const N = Number(process.argv[2] ?? 100_000_000);
const RUNS = 5;

// A one-node model, x: float[n] → Cast(to=FLOAT16) → y, written with a minimal protobuf encoder
// (fields are [number, varint | string | bytes]).
type Field = [number, number | string | Uint8Array];
function msg(fields: Field[]): Uint8Array {
  const out: number[] = [];
  const varint = (n: number) => {
    for (; n > 0x7f; n >>>= 7) out.push((n & 0x7f) | 0x80);
    out.push(n);
  };
  for (const [num, v] of fields) {
    if (typeof v === 'number') {
      varint(num << 3);
      varint(v);
    } else {
      const bytes = typeof v === 'string' ? new TextEncoder().encode(v) : v;
      varint((num << 3) | 2);
      varint(bytes.length);
      out.push(...bytes);
    }
  }
  return Uint8Array.from(out);
}
const valueInfo = (name: string, elemType: number) =>
  msg([[1, name], [2, msg([[1, msg([[1, elemType], [2, msg([[1, msg([[2, 'n']])]])]])]])]]);
const castToF16 = msg([
  [1, 8], // ir_version
  [8, msg([[1, ''], [2, 17]])], // opset_import
  [7, msg([ // graph
    [1, msg([[1, 'x'], [2, 'y'], [4, 'Cast'], [5, msg([[1, 'to'], [3, 10], [20, 2]])]])],
    [2, 'g'],
    [11, valueInfo('x', 1)],
    [12, valueInfo('y', 10)],
  ])],
]);

function median(label: string, fn: () => Promise<unknown> | unknown): Promise<number> {
  return (async () => {
    await fn(); // warm up
    const times: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const t0 = performance.now();
      await fn();
      times.push(performance.now() - t0);
    }
    const ms = times.sort((a, b) => a - b)[RUNS >> 1];
    const rate = N / ms / 1e3;
    console.log(`${label.padEnd(34)} ${rate.toFixed(0).padStart(5)} M values/s  (median ${ms.toFixed(0)} ms)`);
    return rate;
  })();
}

// Weight-like data: normal(0, 0.05) via Box–Muller, with a few large outliers.
const src = new Float32Array(N);
for (let i = 0; i < N; i += 2) {
  const r = Math.sqrt(-2 * Math.log(1 - Math.random())) * 0.05;
  const t = 2 * Math.PI * Math.random();
  src[i] = r * Math.cos(t);
  if (i + 1 < N) src[i + 1] = r * Math.sin(t);
}
for (let i = 0; i < N; i += 9973) src[i] *= 1000;
const dst = new Uint16Array(N);

console.log(`float32 → float16, ${N / 1e6} M values, median of ${RUNS} (node ${process.version})`);
const ours = await median('ours (float32ArrayToFloat16)', () => float32ArrayToFloat16(src, dst));

const x = new ort.Tensor('float32', src, [N]);
let ref: Uint16Array | undefined;
const rates: number[] = [];
for (const threads of [0, 1]) {
  const session = await ort.InferenceSession.create(castToF16, { intraOpNumThreads: threads });
  rates.push(await median(`ORT Cast (${threads ? '1 thread' : 'default threads'})`, async () => {
    ref = (await session.run({ x })).y!.data as Uint16Array;
  }));
  await session.release();
}

let same = ref!.length === N;
for (let i = 0; same && i < N; i++) same = ref![i] === dst[i];
console.log(`ours / ORT: ${(ours / rates[0]).toFixed(2)}× (default threads), ${(ours / rates[1]).toFixed(2)}× (1 thread); outputs ${same ? 'identical' : 'DIFFER'}`);
