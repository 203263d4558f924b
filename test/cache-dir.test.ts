import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultCacheDir } from '../src/index.js';

describe('defaultCacheDir', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'onnx-cache-dir-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is node_modules/.cache/onnx-compress beside the nearest package.json, also from a subfolder', () => {
    const project = path.join(dir, 'app');
    const sub = path.join(project, 'src', 'models');
    mkdirSync(sub, { recursive: true });
    writeFileSync(path.join(project, 'package.json'), '{}');
    const expected = path.join(project, 'node_modules', '.cache', 'onnx-compress');
    expect(defaultCacheDir(project)).toBe(expected);
    expect(defaultCacheDir(sub)).toBe(expected);
  });

  it('falls back to the folder itself when no package.json is above it', () => {
    // os.tmpdir() has no package.json above it on the machines the tests run on; skip otherwise.
    const lone = path.join(dir, 'lone');
    mkdirSync(lone, { recursive: true });
    const found = defaultCacheDir(lone);
    if (!found.startsWith(dir)) return;
    expect(found).toBe(path.join(lone, 'node_modules', '.cache', 'onnx-compress'));
  });
});
