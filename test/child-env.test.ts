/**
 * The environment of the processes onnx-compress starts (src/runtime/child.ts): huge pages, a heap the
 * verification child keeps (and fills ahead: isolate-child.ts prefault), and onnxruntime's usage
 * telemetry off unless the user says otherwise.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';
import { childEnv, residentBytes } from '../src/runtime/child.js';
import { closeIsolatedPool, isolatedPids, warmIsolatedPool } from '../src/runtime/isolate.js';

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'child-env-test-'));
});
afterAll(() => {
  closeIsolatedPool();
  rmSync(tmp, { recursive: true, force: true });
});

/** Runs `f` with process.env's `vars` set (undefined: unset), then puts them back. */
function withEnv<T>(vars: Record<string, string | undefined>, f: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  const set = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) {
      if (x === undefined) delete process.env[k];
      else process.env[k] = x;
    }
  };
  set(vars);
  try {
    return f();
  } finally {
    set(saved);
  }
}

describe("children's environment", () => {
  it('adds the malloc tunables a user has not set, and turns onnxruntime telemetry off unless the user set it', () => {
    withEnv({ GLIBC_TUNABLES: undefined, ORT_DISABLE_TELEMETRY: undefined }, () => {
      expect(childEnv()).toMatchObject({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1', ORT_DISABLE_TELEMETRY: '1' });
      expect(childEnv({ keepHeap: true }).GLIBC_TUNABLES).toBe('glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456');
    });
    withEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536', ORT_DISABLE_TELEMETRY: '0' }, () => {
      const env = childEnv({ keepHeap: true });
      expect(env.GLIBC_TUNABLES).toBe('glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536:glibc.malloc.hugetlb=1:glibc.malloc.trim_threshold=268435456');
      expect(env.ORT_DISABLE_TELEMETRY).toBe('0');
    });
    withEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' }, () => expect(childEnv().GLIBC_TUNABLES).toBe('glibc.malloc.hugetlb=0'));
  });

  // With NODE_EXTRA_CA_CERTS set, every Node start loads OpenSSL's roots and the file (~0.09 s): the
  // verification and web check children never connect anywhere.
  it('leaves NODE_EXTRA_CA_CERTS out unless asked to keep it', () => {
    withEnv({ NODE_EXTRA_CA_CERTS: '/etc/corp-ca.pem' }, () => {
      expect('NODE_EXTRA_CA_CERTS' in childEnv()).toBe(false);
      expect('NODE_EXTRA_CA_CERTS' in childEnv({ keepHeap: true })).toBe(false);
      expect(childEnv({ tls: true }).NODE_EXTRA_CA_CERTS).toBe('/etc/corp-ca.pem');
      expect(process.env.NODE_EXTRA_CA_CERTS).toBe('/etc/corp-ca.pem');
    });
    withEnv({ NODE_EXTRA_CA_CERTS: undefined }, () => expect('NODE_EXTRA_CA_CERTS' in childEnv({ tls: true })).toBe(false));
  });

  // The verification child faults in memory for the coming session while it waits, and keeps it.
  it.runIf(process.platform === 'linux')('the verification child holds the memory it was asked to fault in ahead', async () => {
    warmIsolatedPool();
    const [pid] = isolatedPids();
    expect(pid).toBeGreaterThan(0);
    const rss = () => residentBytes(pid) ?? 0;
    // Its own start (node, onnxruntime, a small warm-up session) settles first.
    let before = 0;
    for (let t = Date.now(); Date.now() - t < 20_000; await new Promise((r) => setTimeout(r, 200))) {
      const now = rss();
      if (now > 0 && Math.abs(now - before) < 2 ** 20) break;
      before = now;
    }
    // 128 MiB asked: part of it may be heap the warm-up session freed (reused, already resident).
    warmIsolatedPool(128 * 2 ** 20);
    let grown = 0;
    for (let t = Date.now(); Date.now() - t < 20_000 && grown < 64 * 2 ** 20; await new Promise((r) => setTimeout(r, 100))) grown = rss() - before;
    expect(grown).toBeGreaterThanOrEqual(64 * 2 ** 20);
  }, 60_000);

  // onnxruntime-node 1.30 writes ~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db}
  // from any process that creates a session, unless told not to (or it sees a CI variable).
  it.runIf(existsSync('dist/cli.js'))('`build` leaves nothing of onnxruntime telemetry in the home folder', () => {
    const dir = mkdtempSync(join(tmp, 'build-'));
    const home = join(dir, 'home');
    mkdirSync(home);
    const w = new Float32Array(64 * 32).map((_, i) => Math.sin(i));
    const graph = makeGraph('mm', [makeNode('MatMul', ['x', 'w'], ['y'])], [makeValueInfo('x', DataType.FLOAT, [1, 64])], [makeValueInfo('y', DataType.FLOAT, [1, 32])], [makeTensor('w', DataType.FLOAT, [64, 32], w)]);
    writeFileSync(join(dir, 'mm.onnx'), encodeModelToBytes(makeModel(graph)));
    writeFileSync(join(dir, 'compress.yaml'), 'models:\n  mm:\n    source: ./mm.onnx\n    webCheck: false\n    quantize: { dtype: int8 }\n');
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: home };
    for (const ci of ['CI', 'GITHUB_ACTIONS', 'TF_BUILD', 'ORT_DISABLE_TELEMETRY']) delete env[ci];
    const r = spawnSync(process.execPath, [resolve('dist/cli.js'), 'build', '--no-cache', '--quiet', '--out', 'out'], { cwd: dir, env, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const manifest = JSON.parse(readFileSync(join(dir, 'out', 'mm.manifest.json'), 'utf8')) as { timings: { verify?: number } };
    expect(manifest.timings.verify).toBeGreaterThan(0); // onnxruntime did run (in the verification child)
    expect(existsSync(join(home, '.cache'))).toBe(false);
  }, 180_000);
});
