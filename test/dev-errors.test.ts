/**
 * The dev server when a model cannot be built: the request is answered 503 with one line of text (the
 * model is unavailable until its input is fixed), the error goes to the terminal and Vite's overlay, the
 * server stays up (even when onnxruntime aborts on the model: the crash happens in the isolated child),
 * and the other models are still served. No request path gets a 500 or a stack trace.
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, createServer, type ViteDevServer } from 'vite';
import onnxCompress from '../src/plugin/vite.js';

const RECIPE = `defaults:
  device: cpu
models:
  fmnist:
    source: models/fmnist.onnx
  gru:
    source: models/gru.onnx
    quantize: { dtype: int8 }
  empty:
    source: models/empty.onnx
`;

let tmp: string;
let server: ViteDevServer;
let base: string;
const terminal: string[] = [];
const overlay: { message: string }[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'onnx-compress-dev-errors-'));
  const root = path.join(tmp, 'app');
  mkdirSync(path.join(root, 'models'), { recursive: true });
  copyFileSync('test/fixtures/fmnist-cnn/model.onnx', path.join(root, 'models/fmnist.onnx'));
  copyFileSync('test/fixtures/crash/gru-seq0.onnx', path.join(root, 'models/gru.onnx')); // aborts onnxruntime
  writeFileSync(path.join(root, 'models/empty.onnx'), '');
  writeFileSync(path.join(root, 'compress.yaml'), RECIPE);
  writeFileSync(path.join(root, 'index.html'), '<!doctype html>\n');
  server = await createServer({
    root,
    configFile: false,
    customLogger: { ...createLogger('silent'), error: (msg: string) => void terminal.push(msg) },
    plugins: [onnxCompress({ cacheDir: path.join(tmp, 'cache'), device: 'cpu', logLevel: 'silent' })],
    server: { host: '127.0.0.1', port: 0, strictPort: false },
    optimizeDeps: { noDiscovery: true, include: [] },
  });
  const send = server.ws.send.bind(server.ws) as (...a: unknown[]) => void;
  server.ws.send = ((...a: unknown[]) => {
    const m = a[0] as { type?: string; err?: { message: string } };
    if (m?.type === 'error' && m.err) overlay.push(m.err);
    send(...a);
  }) as typeof server.ws.send;
  await server.listen();
  base = `http://127.0.0.1:${(server.httpServer!.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('dev middleware: a model that cannot be built', () => {
  it('aborts onnxruntime: 503 with one line naming the model and the crash; overlay and terminal say it; the server stays up', async () => {
    const res = await fetch(`${base}/@onnx-compress/gru.onnx`);
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    const text = await res.text();
    expect(text).toMatch(/^onnx-compress could not build "gru": .*gru\.onnx: (gru: )?onnxruntime crashed on the model .*SIGABRT\n$/);
    expect(text.trimEnd().split('\n')).toHaveLength(1);
    expect(text).not.toMatch(/\n\s+at /);
    expect(overlay.some((e) => /gru\.onnx: (gru: )?onnxruntime crashed/.test(e.message))).toBe(true);
    expect(terminal.some((t) => /gru\.onnx: (gru: )?onnxruntime crashed/.test(t))).toBe(true);
    // HEAD: the same status, no body.
    const head = await fetch(`${base}/@onnx-compress/gru.onnx`, { method: 'HEAD' });
    expect(head.status).toBe(503);
    expect(await head.text()).toBe('');
    // The server is alive and serves the other models.
    const ok = await fetch(`${base}/@onnx-compress/fmnist.onnx`);
    expect(ok.status).toBe(200);
    expect((await ok.arrayBuffer()).byteLength).toBeGreaterThan(1_000_000);
  }, 120_000);

  it('an empty model file: 503 with the file named', async () => {
    const res = await fetch(`${base}/@onnx-compress/empty.onnx`);
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/^onnx-compress could not build "empty": .*empty\.onnx/);
  }, 60_000);

  it('no request path gets a 500', async () => {
    const paths = [
      '/%E0%A4%A',
      '/%',
      '//[',
      '/@onnx-compress/',
      '/@onnx-compress/%ZZ.onnx',
      '/@onnx-compress/%00.onnx',
      '/@onnx-compress/nope.onnx',
      '/@onnx-compress/../compress.yaml',
      '/@onnx-compress/..%2fcompress.yaml',
      '/@onnx-compress/gru.onnx?x=1',
      '/@onnx-compress/gru.onnx/',
      `/@onnx-compress/${'a'.repeat(4000)}.onnx`,
      '/models/gru.onnx',
      '/models/empty.onnx?compress',
      '/compress.yaml',
    ];
    const statuses: Record<string, number> = {};
    for (const p of paths) {
      for (const method of ['GET', 'HEAD']) statuses[`${method} ${p.slice(0, 60)}`] = (await fetch(base + p, { method })).status;
    }
    expect(Object.entries(statuses).filter(([, s]) => s >= 500 && s !== 503)).toEqual([]);
  }, 120_000);
});
