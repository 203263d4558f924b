/**
 * The example app in a real browser: build examples/vite-app with the plugin, serve it with
 * `vite preview` on 127.0.0.1, type a spam and a ham e-mail into it with Playwright + Debian's chromium,
 * and check that the page's P(spam) equals onnxruntime-node's on the same compressed model. The page
 * picks its build with `pickVariant` (headless chromium has no WebGPU adapter: the int8 wasm build)
 * and runs it in a Web Worker.
 * Needs /usr/bin/chromium (apt-get install chromium): without it this test fails, it does not skip.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { build, preview, type PreviewServer } from 'vite';
import { SEQ_LEN, spamProbability, tokenize } from '../examples/vite-app/src/tokenize.js';

const CHROMIUM = '/usr/bin/chromium';
const APP = path.resolve('examples/vite-app');

// Two e-mail bodies from the spam model's held-out test split (test-split.json #0: spam, #2: ham).
const EMAILS = {
  spam: '\nEducate yourself about everything you ever wanted to know !!! \n\n\n\n1. Satellite TV/RCA Dish Descrambler\n\nOur unique, complete p',
  ham: 'On Mon, Aug 19, 2002 at 03:08:16PM +0100, John P. Looney mentioned:\n>  This is likely because to get it to boot, like the cobal',
};

let outDir: string;
let server: PreviewServer | undefined;
let browser: Browser | undefined;

beforeAll(async () => {
  outDir = mkdtempSync(path.join(tmpdir(), 'onnx-compress-e2e-'));
  await build({ root: APP, configFile: path.join(APP, 'vite.config.ts'), logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  server = await preview({
    root: APP,
    configFile: path.join(APP, 'vite.config.ts'),
    logLevel: 'warn',
    build: { outDir },
    preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
  });
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((r) => (server ? server.httpServer.close(() => r()) : r()));
  rmSync(outDir, { recursive: true, force: true });
});

it('classifies typed e-mails in the browser exactly as onnxruntime-node does', async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium) to run the browser test`);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'],
  });
  const page = await browser.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('response', (r) => void (r.status() >= 400 && problems.push(`HTTP ${r.status()} ${r.url()}`)));

  const address = server!.httpServer.address();
  if (!address || typeof address === 'string') throw new Error('preview server has no port');
  await page.goto(`http://127.0.0.1:${address.port}/`);
  await page.waitForSelector('#probability[data-run="1"], body[data-error]', { timeout: 60_000 });
  expect(await page.getAttribute('body', 'data-error'), problems.join('\n')).toBeNull();

  // The compressed model the page loaded, run by onnxruntime-node.
  const asset = readdirSync(path.join(outDir, 'assets')).find((f) => /^spam-[\w-]+\.onnx$/.test(f));
  expect(asset).toBeDefined();
  // With the math the page runs: float activations. By default ORT's CPU provider fuses int8 DequantizeLinear →
  // MatMul into MatMulNBits with int8 activations, a different computation (its rounding reached 1.2e-4 here).
  const session = await ort.InferenceSession.create(readFileSync(path.join(outDir, 'assets', asset!)), {
    intraOpNumThreads: 1,
    extra: { session: { qdq_matmulnbits_accuracy_level: '1' } },
  });

  let run = 1;
  for (const [label, text] of Object.entries(EMAILS)) {
    await page.fill('#email', text);
    await page.click('#classify');
    await page.waitForSelector(`#probability[data-run="${++run}"]`, { timeout: 30_000 });
    const inBrowser = Number(await page.getAttribute('#probability', 'data-value'));
    const { logits } = await session.run({ input_ids: new ort.Tensor('int64', tokenize(text), [1, SEQ_LEN]) });
    const inNode = spamProbability(logits.data as Float32Array);
    console.log(`${label}: P(spam) browser ${inBrowser}, onnxruntime-node ${inNode}, |Δ| ${Math.abs(inBrowser - inNode).toExponential(1)}`);
    expect(Math.abs(inBrowser - inNode), `${label}: browser ${inBrowser}, node ${inNode}`).toBeLessThan(1e-4);
    expect(await page.textContent('#verdict')).toBe(inNode >= 0.5 ? 'spam' : 'ham');
    expect(inNode >= 0.5 ? 'spam' : 'ham').toBe(label); // the model gets these two right
  }

  // The manifest table names the bundled model file, the picked provider and the browser's latency.
  const table = await page.textContent('#manifest');
  expect(table).toContain(`assets/${asset}`);
  expect(table).toContain('spam (int8, for wasm)');
  expect(table).toContain('wasm (no WebGPU adapter)');
  expect(table).toMatch(/latency in this browser[\d.]+ ms median/);
  // The model ran in the worker bundle, which has onnxruntime-web; the page's own script does not.
  const js = readdirSync(path.join(outDir, 'assets')).filter((f) => f.endsWith('.js'));
  const worker = js.filter((f) => /^worker-/.test(f));
  expect(worker, js.join(', ')).toHaveLength(1);
  expect(problems).toEqual([]);
  mkdirSync('test-results', { recursive: true });
  await page.screenshot({ path: 'test-results/e2e.png', fullPage: true });
  await session.release();
});
