/**
 * Runs the model off the page's thread: onnxruntime-web in a Web Worker. The page sends the model URL
 * and execution provider it picked, then token ids; the worker answers P(spam) and, once, the median
 * latency of the model in this browser.
 */
import * as ort from 'onnxruntime-web/wasm';
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';
import { SEQ_LEN, spamProbability } from './tokenize.js';

export type Request = { kind: 'load'; url: string; executionProvider: string } | { kind: 'classify'; ids: BigInt64Array };
export type Response =
  | { kind: 'loaded'; ms: number; latency: { median: number; p90: number } }
  | { kind: 'classified'; p: number }
  | { kind: 'error'; message: string };

// The .wasm is an asset of this bundle; one thread, so no cross-origin isolation is needed.
ort.env.wasm.wasmPaths = { wasm: new URL(wasmUrl, self.location.href).href };
ort.env.wasm.numThreads = 1;

let session: ort.InferenceSession | undefined;
const post = (r: Response) => self.postMessage(r);

async function latency(s: ort.InferenceSession): Promise<{ median: number; p90: number }> {
  const feeds = { input_ids: new ort.Tensor('int64', new BigInt64Array(SEQ_LEN).fill(2n), [1, SEQ_LEN]) };
  await s.run(feeds); // warm-up
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)], p90: times[Math.floor(times.length * 0.9)] };
}

self.onmessage = async ({ data }: MessageEvent<Request>) => {
  try {
    if (data.kind === 'load') {
      const t0 = performance.now();
      session = await ort.InferenceSession.create(data.url, { executionProviders: [data.executionProvider] });
      const ms = performance.now() - t0;
      post({ kind: 'loaded', ms, latency: await latency(session) });
    } else {
      if (!session) throw new Error('model not loaded');
      const { logits } = await session.run({ input_ids: new ort.Tensor('int64', data.ids, [1, SEQ_LEN]) });
      post({ kind: 'classified', p: spamProbability(logits.data as Float32Array) });
    }
  } catch (e) {
    post({ kind: 'error', message: e instanceof Error ? e.message : String(e) });
  }
};
