/**
 * A build that runs nothing in its own process (no calibration or evaluation data; verification in the
 * isolated child; no GPU on this machine) does not load onnxruntime's native library there (~60 ms of
 * every such build): int4 quantization and magnitude pruning through the command line, watched by a
 * module-resolution hook that logs every process that imports onnxruntime-node.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { encodeModelToBytes } from '../src/onnx/codec.js';
import { DataType } from '../src/onnx/dtypes.js';
import { makeGraph, makeModel, makeNode, makeValueInfo } from '../src/onnx/graph.js';
import { makeTensor } from '../src/onnx/tensor.js';

const tmp = mkdtempSync(join(tmpdir(), 'lazy-runtime-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** NODE_OPTIONS value whose hook appends "<script> <specifier>" to `log` for each onnxruntime-node import. */
function watchImports(dir: string, log: string): string {
  writeFileSync(
    join(dir, 'hook.mjs'),
    `import { appendFileSync } from 'node:fs';
let who = '';
export function initialize(data) { who = data.who; }
export async function resolve(spec, ctx, next) {
  if (spec === 'onnxruntime-node') appendFileSync(${JSON.stringify(log)}, who + ' ' + spec + '\\n');
  return next(spec, ctx);
}
`,
  );
  writeFileSync(
    join(dir, 'register.mjs'),
    `import { register } from 'node:module';
register(${JSON.stringify(pathToFileURL(join(dir, 'hook.mjs')).href)}, { data: { who: process.argv[1] ?? '' } });
`,
  );
  return `--import ${pathToFileURL(join(dir, 'register.mjs')).href}`;
}

describe('onnxruntime loads only where something runs', () => {
  for (const [name, recipe] of [
    ['int4 quantization', 'quantize: { dtype: int4, granularity: 32 }'],
    ['magnitude pruning', 'prune: { method: magnitude, rate: 0.5 }'],
  ]) {
    it.runIf(existsSync('dist/cli.js'))(`${name}: the build's processes never import onnxruntime-node; the verification child does`, () => {
      const dir = join(tmp, name.replace(/\W/g, '-'));
      mkdirSync(dir);
      const w = new Float32Array(256 * 128).map((_, i) => Math.sin(i * 0.37));
      const graph = makeGraph(
        'mm',
        [makeNode('MatMul', ['x', 'w'], ['h']), makeNode('Relu', ['h'], ['y'])],
        [makeValueInfo('x', DataType.FLOAT, [1, 256])],
        [makeValueInfo('y', DataType.FLOAT, [1, 128])],
        [makeTensor('w', DataType.FLOAT, [256, 128], w)],
      );
      writeFileSync(join(dir, 'mm.onnx'), encodeModelToBytes(makeModel(graph)));
      writeFileSync(join(dir, 'compress.yaml'), `models:\n  mm:\n    source: ./mm.onnx\n    webCheck: false\n    ${recipe}\n`);
      const log = join(dir, 'imports.log');
      const r = spawnSync(process.execPath, [resolve('dist/cli.js'), 'build', '--no-cache', '--quiet', '--out', 'out'], {
        cwd: dir,
        env: { ...process.env, NODE_OPTIONS: watchImports(dir, log) },
        encoding: 'utf8',
        timeout: 120_000,
      });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const manifest = JSON.parse(readFileSync(join(dir, 'out', 'mm.manifest.json'), 'utf8')) as { timings: { verify?: number } };
      expect(manifest.timings.verify).toBeGreaterThan(0);
      const importers = readFileSync(log, 'utf8').trim().split('\n').map((l) => l.split(' ')[0]);
      expect(importers.some((f) => f.endsWith('isolate-child.js'))).toBe(true); // the hook sees imports
      expect(importers.filter((f) => f.endsWith('cli.js'))).toEqual([]);
    }, 180_000);
  }
});
