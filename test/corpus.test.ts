/**
 * A bounded slice of the bad-recipe / bad-data corpus (`npm run fuzz -- --corpus`, scripts/fuzz-corpus.ts)
 * through the real command (dist/cli.js: run `npm run build` first): the first case of every class, and
 * the cases that were findings before their fix. Each must exit 1 or 2 with a located one-line message,
 * no internal error or stack, no input changed and no secret leaked. Time is checked as CPU time with a
 * wide margin (the machine running the tests may be busy); the corpus run reports the figures.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { corpusCases, runCorpusCase } from '../scripts/fuzz-corpus.js';

/** Cases that were findings of the corpus before their fix. */
const REGRESSIONS = [
  'evaluate: process.exit(1)', // exit 1 with no message
  'evaluate: process.exit(70)', // exit 70
  'evaluate: an uncaught exception in a timer', // a stack trace, exit 1
  'duplicate entries', // accepted (exit 0)
  'stored entry, declared size lies', // accepted (exit 0)
  'validate: recipe is a FIFO', // a hang
  'block sequence 20000', // a 200 MB recipe read whole before its size was checked
  'build: a FIFO inside a data folder', // a hang
  'output = onnx-compress.json', // the model silently replaced by the report (exit 0, model missing)
  'output = onnx-compress-report.html', // the same
  'labels nested 10,000 deep', // the label silently dropped (exit 0)
];

describe('the bad-recipe / bad-data corpus (a slice)', () => {
  const all = corpusCases();
  const firstOfClass = [...new Map(all.map((c) => [c.cls, c])).values()].map((c) => all.find((x) => x.cls === c.cls)!);
  const slice = [...firstOfClass, ...REGRESSIONS.map((n) => all.find((c) => c.name.endsWith(n))!)];

  it('has at least 300 cases in every class the issue names', () => {
    expect(all.length).toBeGreaterThanOrEqual(300);
    for (const cls of ['billion laughs', 'deep nesting', 'many keys', 'huge samples/runs', 'data modules', 'npz bombs / malformed npz', 'JSONL', 'FIFOs and special files', 'symlink escapes', 'NUL and long names', 'outputs over sources/manifests']) {
      expect(all.filter((c) => c.cls === cls).length, cls).toBeGreaterThan(5);
    }
    expect(slice.every(Boolean)).toBe(true);
  });

  for (const c of slice) {
    it.runIf(existsSync('dist/cli.js'))(`${c.cls} / ${c.name}`, () => {
      const o = runCorpusCase(c, 'dist/cli.js', 20_000, 2 ** 30);
      expect(o.finding, `${o.message} (exit ${o.status}, ${o.ms} ms, CPU ${o.cpuMs} ms)`).toBeUndefined();
      expect([1, 2]).toContain(o.status);
    }, 120_000);
  }
});
