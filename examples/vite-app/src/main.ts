/**
 * Spam or ham, in the browser: the compressed model comes from `?compress&meta` (its URL in the build
 * and its manifest), onnxruntime-web runs it on the wasm backend.
 */
import * as ort from 'onnxruntime-web/wasm';
import wasmUrl from 'onnxruntime-web/ort-wasm-simd-threaded.wasm?url';
import spam from '../models/spam.onnx?compress&meta';
import { SEQ_LEN, spamProbability, tokenize } from './tokenize.js';

// The .wasm is an asset of this bundle; one thread, so no cross-origin isolation is needed.
ort.env.wasm.wasmPaths = { wasm: new URL(wasmUrl, document.baseURI).href };
ort.env.wasm.numThreads = 1;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const email = $<HTMLTextAreaElement>('email');
const button = $<HTMLButtonElement>('classify');
const verdict = $('verdict');
const probability = $<HTMLOutputElement>('probability');
const status = $('status');
let runs = 0;

async function classify(session: ort.InferenceSession): Promise<void> {
  const ids = new ort.Tensor('int64', tokenize(email.value), [1, SEQ_LEN]);
  const { logits } = await session.run({ input_ids: ids });
  const p = spamProbability(logits.data as Float32Array);
  verdict.textContent = p >= 0.5 ? 'spam' : 'ham';
  verdict.className = p >= 0.5 ? 'spam' : 'ham';
  probability.value = p.toFixed(6);
  // For tests and curious readers: the exact value and which run produced it.
  probability.dataset.value = String(p);
  probability.dataset.run = String(++runs);
}

function showManifest(): void {
  const m = spam.manifest;
  const kb = (n: number) => `${(n / 1000).toFixed(1)} kB`;
  const pct = (n: number | undefined) => (n === undefined ? '–' : `${(n * 100).toFixed(1)} %`);
  const rows: [string, string][] = [
    ['model', `${m.id} (${m.steps.map((s) => [s.step, s.params.dtype].filter(Boolean).join(' ')).join(', ')})`],
    ['size before → after', `${kb(m.sizes.before.bytes)} → ${kb(m.sizes.after.bytes)} (${(m.sizes.before.bytes / m.sizes.after.bytes).toFixed(2)}× smaller)`],
    ['brotli before → after', `${kb(m.sizes.before.brotli)} → ${kb(m.sizes.after.brotli)}`],
    ['accuracy before → after', `${pct(m.accuracy?.original.accuracy)} → ${pct(m.accuracy?.compressed.accuracy)} (${m.accuracy?.samples ?? 0} e-mails)`],
    ['agreement with the original', pct(m.accuracy?.metrics.agreement)],
    ['file', spam.url],
  ];
  const table = $<HTMLTableElement>('manifest');
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
}

async function main(): Promise<void> {
  showManifest();
  const t0 = performance.now();
  const session = await ort.InferenceSession.create(spam.url, { executionProviders: ['wasm'] });
  status.textContent = `Model loaded in ${Math.round(performance.now() - t0)} ms.`;
  button.disabled = false;
  button.addEventListener('click', () => void classify(session).catch(fail));
  await classify(session);
}

function fail(e: unknown): void {
  status.textContent = `Error: ${e instanceof Error ? e.message : String(e)}`;
  document.body.dataset.error = status.textContent;
}

main().catch(fail);
