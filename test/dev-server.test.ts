/**
 * The plugin in Vite's dev server: the `?compress` URL serves the compressed bytes (equal to
 * compressBuild's); editing the recipe sends a full reload over the HMR websocket, and a broken recipe
 * an overlay error with its file:line:column.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLogger, createServer, type ViteDevServer } from 'vite';
import { compressBuild } from '../src/pipeline.js';
import onnxCompress from '../src/plugin/vite.js';
import { loadRecipe } from '../src/recipe/index.js';

const RECIPE = `models:
  spam:
    source: models/spam.onnx
    quantize:
      dtype: int8
`;

let tmp: string;
let root: string;
let cacheDir: string;
let server: ViteDevServer;
let base: string;
/** What the dev server printed in the terminal (errors only). */
const terminal: string[] = [];

beforeAll(async () => {
  tmp = mkdtempSync(path.join(tmpdir(), 'onnx-compress-dev-'));
  root = path.join(tmp, 'app');
  cacheDir = path.join(tmp, 'cache');
  mkdirSync(path.join(root, 'models'), { recursive: true });
  mkdirSync(path.join(root, 'src'), { recursive: true });
  copyFileSync('test/fixtures/spam-tinybert/model.onnx', path.join(root, 'models/spam.onnx'));
  writeFileSync(path.join(root, 'compress.yaml'), RECIPE);
  writeFileSync(path.join(root, 'index.html'), '<!doctype html><script type="module" src="/src/main.js"></script>\n');
  writeFileSync(
    path.join(root, 'src/main.js'),
    `import url from '../models/spam.onnx?compress';\nimport meta from '../models/spam.onnx?compress&meta';\nconsole.log(url, meta.id);\n`,
  );
  server = await createServer({
    root,
    configFile: false,
    customLogger: { ...createLogger('silent'), error: (msg: string) => void terminal.push(msg) },
    plugins: [onnxCompress({ cacheDir, device: 'cpu', logLevel: 'silent' })],
    server: { host: '127.0.0.1', port: 0, strictPort: false },
    optimizeDeps: { noDiscovery: true, include: [] },
  });
  await server.listen();
  base = `http://127.0.0.1:${(server.httpServer!.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

it('serves the compressed bytes at the URL the import gives', async () => {
  const main = await (await fetch(`${base}/src/main.js`)).text();
  const urlModule = /from\s+"(\/@id\/__x00__onnx-compress:url:spam)"/.exec(main)?.[1];
  expect(urlModule, main).toBeDefined();
  const code = await (await fetch(base + urlModule)).text();
  const modelUrl = /export default "([^"]+)"/.exec(code)?.[1];
  expect(modelUrl).toBe('/@onnx-compress/spam.onnx');

  const res = await fetch(base + modelUrl);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/octet-stream');
  const bytes = new Uint8Array(await res.arrayBuffer());
  expect(Number(res.headers.get('content-length'))).toBe(bytes.byteLength);

  const [build] = (await loadRecipe(path.join(root, 'compress.yaml'))).builds;
  const expected = await compressBuild(build, { cacheDir, device: 'cpu' });
  expect(expected.cached).toBe(true); // the server already made it
  expect(Buffer.compare(Buffer.from(bytes), Buffer.from(expected.bytes))).toBe(0);
});

it('reloads the page when the recipe changes, and shows recipe errors in the overlay', async () => {
  const hmr = await hmrClient(base);
  try {
    await hmr.next((m) => m.type === 'connected');
    await editRecipe(RECIPE + '# edited\n');
    await hmr.next((m) => m.type === 'full-reload');

    await editRecipe(RECIPE.replace('dtype: int8', 'dtype: int7'));
    const { err } = await hmr.next((m) => m.type === 'error');
    expect(err.message).toMatch(/compress\.yaml:5:14: models\.spam\.quantize\.dtype/);
    expect(err.loc).toEqual({ file: path.join(root, 'compress.yaml'), line: 5, column: 14 });
    expect(err.id).toBe(path.join(root, 'compress.yaml'));
    // The recipe's own lines, with a caret under the column — in the overlay and in the terminal.
    expect(err.frame).toContain('5 |       dtype: int7');
    expect(err.frame).toContain(`  | ${' '.repeat(13)}^`);
    const printed = terminal.find((t) => t.includes('compress.yaml:5:14'));
    expect(printed, terminal.join('\n')).toBeDefined();
    expect(printed).toContain('5 |       dtype: int7');

    await editRecipe(RECIPE);
    await hmr.next((m) => m.type === 'full-reload');
  } finally {
    hmr.close();
  }
  expect(readFileSync(path.join(root, 'compress.yaml'), 'utf8')).toBe(RECIPE);
});

/** The file watcher folds changes to one file that come close together: space them as an editor would. */
async function editRecipe(text: string): Promise<void> {
  await new Promise((r) => setTimeout(r, 300));
  writeFileSync(path.join(root, 'compress.yaml'), text);
}

// ---------------------------------------------------------------------------------------------------------------
// A minimal WebSocket client for Vite's HMR channel (Node 20 has no global WebSocket): text frames only.

interface HmrClient {
  /** The next message (or one already received and not yet taken) that `match` accepts. */
  next(match: (m: any) => boolean, timeoutMs?: number): Promise<any>;
  close(): void;
}

function hmrClient(base: string): Promise<HmrClient> {
  const url = new URL(base);
  const req = http.request({
    host: url.hostname,
    port: url.port,
    path: '/',
    headers: {
      Connection: 'Upgrade',
      Upgrade: 'websocket',
      'Sec-WebSocket-Key': randomBytes(16).toString('base64'),
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Protocol': 'vite-hmr',
    },
  });
  return new Promise((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => reject(new Error(`no upgrade: HTTP ${res.statusCode}`)));
    req.on('upgrade', (_res, socket: Duplex, head: Buffer) => {
      const inbox: any[] = [];
      const waiters: { match: (m: any) => boolean; resolve: (m: any) => void }[] = [];
      const deliver = () => {
        for (const w of [...waiters]) {
          const i = inbox.findIndex(w.match);
          if (i >= 0) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(inbox.splice(i, 1)[0]);
          }
        }
      };
      let buf = head;
      const onData = (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        for (;;) {
          if (buf.length < 2) return;
          const opcode = buf[0] & 0x0f;
          let len = buf[1] & 0x7f;
          let at = 2;
          if (len === 126) [len, at] = [buf.readUInt16BE(2), 4];
          else if (len === 127) [len, at] = [Number(buf.readBigUInt64BE(2)), 10];
          if (buf.length < at + len) return;
          const payload = buf.subarray(at, at + len);
          buf = buf.subarray(at + len);
          if (opcode === 1) inbox.push(JSON.parse(payload.toString('utf8')));
        }
      };
      socket.on('data', (c: Buffer) => {
        onData(c);
        deliver();
      });
      onData(Buffer.alloc(0));
      resolve({
        next(match, timeoutMs = 30_000) {
          return new Promise((res, rej) => {
            const timer = setTimeout(() => rej(new Error(`no matching HMR message in ${timeoutMs} ms; got ${JSON.stringify(inbox)}`)), timeoutMs);
            waiters.push({ match, resolve: (m) => (clearTimeout(timer), res(m)) });
            deliver();
          });
        },
        close() {
          socket.destroy();
        },
      });
    });
    req.end();
  });
}
