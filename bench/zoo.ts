/**
 * The model zoo, whole matrix: every model of bench/lib/zoo.ts × {int8, uint8, int4, q4f16, float16} ×
 * {wasm, webgpu}, built through the CLI, loaded in onnxruntime-node, checked in onnxruntime-web's wasm
 * backend, held to its fidelity floors. Writes bench/out/zoo.json with a markdown table of bytes and
 * fidelity per model × dtype, and one target: every cell green, and int4 ≤ int8 bytes for every model.
 *
 *   npx tsx bench/zoo.ts [--models a,b] [--dtypes int8,int4] [--targets wasm]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fmtBytes } from './lib/stats.js';
import { ZOO, ZOO_DTYPES, ZOO_TARGETS, runZoo, type Cell, type CellResult } from './lib/zoo.js';

const argv = process.argv.slice(2);
const list = (name: string) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1].split(',') : undefined;
};
const models = ZOO.filter((m) => !list('--models') || list('--models')!.includes(m.name));
const dtypes = ZOO_DTYPES.filter((d) => !list('--dtypes') || list('--dtypes')!.includes(d));
const targets = ZOO_TARGETS.filter((t) => !list('--targets') || list('--targets')!.includes(t));
const cells: Cell[] = models.flatMap((model) => dtypes.flatMap((dtype) => targets.map((target) => ({ model, dtype, target }))));

const dir = mkdtempSync(join(tmpdir(), 'zoo-bench-'));
try {
  const { results, ms } = await runZoo(cells, dir);
  const green = results.filter((r) => r.ok).length;
  const byModel = (name: string, dtype: string) => results.filter((r) => r.model === name && r.dtype === dtype);
  const fmt = (r: CellResult | undefined) =>
    !r ? '' : r.bytes === undefined ? `✗ ${r.problems[0].slice(0, 80)}` : `${r.ok ? '' : '✗ '}${fmtBytes(r.bytes)} · cos ${r.cosine?.toFixed(4)}${r.agreement !== undefined && models.find((m) => m.name === r.model)?.classes ? ` · agr ${r.agreement.toFixed(3)}` : ''}${r.within !== undefined ? ` · max ${r.maxAbs?.toFixed(3)} · ${(100 * r.within).toFixed(1)} % ≤ ${r.withinTol}` : ''}`;
  const header = ['model', 'source', ...dtypes.flatMap((d) => targets.map((t) => `${d} ${t}`))];
  const rows = models.map((m) => [m.name, fmtBytes(results.find((r) => r.model === m.name)!.sourceBytes), ...dtypes.flatMap((d) => targets.map((t) => fmt(byModel(m.name, d).find((r) => r.target === t))))]);
  const table = [header, header.map(() => '---'), ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
  const notBigger = models.filter((m) => {
    const i4 = byModel(m.name, 'int4').map((r) => r.bytes ?? Infinity);
    const i8 = byModel(m.name, 'int8').map((r) => r.bytes ?? -Infinity);
    return i4.length && i8.length && Math.max(...i4) <= Math.min(...i8);
  }).length;
  const failures = results.filter((r) => !r.ok).map((r) => `- ${r.id}: ${r.problems.join('; ')}`);
  const markdown = [
    `${cells.length} cells (${models.length} models × ${dtypes.length} dtypes × ${targets.length} targets) built through the CLI in ${(ms / 1000).toFixed(0)} s: ${green} green.`,
    '',
    table,
    '',
    ...(failures.length ? ['Failing cells:', '', ...failures] : []),
  ].join('\n');
  console.log(markdown);
  const out = join(import.meta.dirname ?? '.', 'out');
  mkdirSync(out, { recursive: true });
  writeFileSync(
    join(out, 'zoo.json'),
    JSON.stringify(
      {
        markdown,
        results,
        targets: [
          { what: 'zoo cells green', target: `${cells.length}`, value: `${green}`, met: green === cells.length },
          { what: 'models whose int4 ≤ int8 bytes', target: `${models.length}`, value: `${notBigger}`, met: notBigger === models.length },
        ],
      },
      null,
      2,
    ),
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
