/**
 * Spam or ham, in the browser. `pickVariant` (from the plugin's virtual module) picks the build of the
 * model that fits this browser — here the recipe builds int8 for wasm and 4-bit for WebGPU — and a Web
 * Worker runs it with onnxruntime-web, off the page's thread.
 */
import { pickVariant } from 'virtual:onnx-compress';
import { tokenize } from './tokenize.js';
import type { Request, Response } from './worker.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const email = $<HTMLTextAreaElement>('email');
const button = $<HTMLButtonElement>('classify');
const verdict = $('verdict');
const probability = $<HTMLOutputElement>('probability');
const status = $('status');
let runs = 0;

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (r: Request) => worker.postMessage(r);

function showModel(m: Awaited<ReturnType<typeof pickVariant>>, latency: { median: number; p90: number }): void {
  const kB = (n: number) => `${(n / 1000).toFixed(1)} kB`;
  const pct = (n: number | undefined) => (n === undefined ? '–' : `${(n * 100).toFixed(1)} %`);
  const f = m.fidelity;
  const rows: [string, string][] = [
    ['model', `${m.id} (${m.precision}, for ${m.target})`],
    ['picked for this browser', `${m.executionProvider}${m.device.webgpu ? ` (WebGPU${m.device.shaderF16 ? ' with shader-f16' : ''})` : ' (no WebGPU adapter)'}`],
    ['size before → after', `${kB(m.sourceBytes)} → ${kB(m.bytes)} (${(m.sourceBytes / m.bytes).toFixed(2)}× smaller; brotli ${kB(m.brotli)})`],
    ['accuracy before → after', f ? `${pct(f.accuracyBefore)} → ${pct(f.accuracy)} (${f.samples} e-mails)` : 'not evaluated'],
    ['agreement with the original', pct(f?.agreement)],
    ['budget', m.budget],
    ['latency in this browser', `${latency.median.toFixed(1)} ms median, ${latency.p90.toFixed(1)} ms p90`],
    ['file', m.url],
  ];
  const table = $<HTMLTableElement>('manifest');
  for (const [k, v] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    tr.insertCell().textContent = v;
  }
}

function classify(): void {
  send({ kind: 'classify', ids: tokenize(email.value) });
}

async function main(): Promise<void> {
  const model = await pickVariant('spam');
  worker.onmessage = ({ data }: MessageEvent<Response>) => {
    if (data.kind === 'error') return fail(data.message);
    if (data.kind === 'loaded') {
      status.textContent = `Model loaded in ${Math.round(data.ms)} ms.`;
      showModel(model, data.latency);
      button.disabled = false;
      button.addEventListener('click', classify);
      return classify();
    }
    const p = data.p;
    verdict.textContent = p >= 0.5 ? 'spam' : 'ham';
    verdict.className = p >= 0.5 ? 'spam' : 'ham';
    probability.value = p.toFixed(6);
    // For tests and curious readers: the exact value and which run produced it.
    probability.dataset.value = String(p);
    probability.dataset.run = String(++runs);
  };
  worker.onerror = (e) => fail(e.message);
  send({ kind: 'load', url: model.url, executionProvider: model.executionProvider });
}

function fail(e: unknown): void {
  status.textContent = `Error: ${e instanceof Error ? e.message : String(e)}`;
  document.body.dataset.error = status.textContent;
}

main().catch(fail);
