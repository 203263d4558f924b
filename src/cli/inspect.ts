/**
 * onnx-compress inspect <model.onnx> [--json]
 *
 * Prints what src/inspect.ts finds in a model: a compact aligned report, or one JSON object with
 * --json. External tensors are described (location, offset, length), not loaded.
 */
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { CompressError } from '../errors.js';
import { inspectModel, type InspectReport, type LocationTally, type ValueReport, type WeightTally } from '../inspect.js';
import { readModel } from '../onnx/io.js';
import { externalDataFile } from '../onnx/external.js';
import type { ParsedArgs } from './args.js';

export async function run(args: ParsedArgs): Promise<number> {
  const json = args.options.json === true;
  const file = args.positionals[0];
  // External tensors stay references: their sizes come from external_data `length`.
  const model = readModel(file, { externalData: false });
  const report = inspectModel(model, {
    file,
    fileBytes: statSync(file).size,
    statExternal: (location) => {
      try {
        const st = statSync(externalDataFile(dirname(file), location, file));
        return st.isFile() ? st.size : undefined;
      } catch (e) {
        if (e instanceof CompressError && e.kind !== 'io') throw e; // an escape, not a missing file
        return undefined;
      }
    },
  });
  console.log(json ? JSON.stringify(report, null, 2) : formatReport(report));
  return 0;
}

// ---------------------------------------------------------------- text

const intFmt = new Intl.NumberFormat('en-US');
export const int = (n: number): string => intFmt.format(n);

export function humanBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

function shapeText(v: ValueReport): string {
  if (v.shape === null) return '[?]';
  return `[${v.shape.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;
}

/** Columns two spaces apart; `align` per column: 'l' or 'r' (default: first left, others right). */
function table(header: string[] | null, rows: string[][], indent = '  ', align?: string): string[] {
  const all = header ? [header, ...rows] : rows;
  const cols = Math.max(0, ...all.map((r) => r.length));
  const widths = Array.from({ length: cols }, (_, c) => Math.max(...all.map((r) => (r[c] ?? '').length)));
  const left = (c: number) => (align ? align[c] === 'l' : c === 0);
  return all.map((r) => (indent + r.map((cell, c) => (left(c) ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).trimEnd());
}

function tallyRow(label: string, t: WeightTally, total: WeightTally): string[] {
  const pct = total.bytes > 0 ? `${((100 * t.bytes) / total.bytes).toFixed(1)}%` : '';
  return [label, int(t.tensors), int(t.params), humanBytes(t.bytes), pct];
}

function locationRow(label: string, t: LocationTally, total: WeightTally): string[] {
  const row = tallyRow(label, t, total);
  row.push(t.inSubgraphs.tensors > 0 ? `(${int(t.inSubgraphs.tensors)} tensors, ${int(t.inSubgraphs.params)} params in subgraphs)` : '');
  return row;
}

export function formatReport(r: InspectReport): string {
  const out: string[] = [];
  const kv = (k: string, v: string) => out.push(`${k.padEnd(12)} ${v}`);
  if (r.file !== undefined) kv('model', r.file + (r.fileBytes !== undefined ? ` (${humanBytes(r.fileBytes)})` : ''));
  const producer = [r.producer.name, r.producer.version].filter(Boolean).join(' ') || '?';
  kv('ir version', `${r.irVersion ?? '?'}    producer: ${producer}${r.graphName ? `    graph: ${r.graphName}` : ''}`);
  kv('opsets', r.opsets.map((o) => `${o.domain} ${o.version}`).join(', ') || '(none)');
  if (r.metadata.length) kv('metadata', r.metadata.map((m) => `${m.key}=${m.value.length > 40 ? m.value.slice(0, 37) + '...' : m.value}`).join(', '));

  // Inputs and outputs in one aligned table.
  const ioRows: string[][] = [];
  const ioLabels: string[] = [];
  for (const [label, list] of [['inputs', r.inputs], ['outputs', r.outputs]] as const) {
    if (list.length === 0) {
      ioLabels.push(label);
      ioRows.push(['(none)', '', '']);
    }
    list.forEach((v, i) => {
      ioLabels.push(i === 0 ? label : '');
      ioRows.push([v.name, v.type, shapeText(v)]);
    });
  }
  table(null, ioRows, '', 'lll').forEach((row, i) => kv(ioLabels[i], row));
  if (r.initializerInputs) kv('', `(+${r.initializerInputs} initializers also listed as inputs)`);

  const n = r.nodes;
  const where = r.subgraphs ? [`${int(n.mainGraph)} main graph`, `${int(n.inSubgraphs)} in ${int(r.subgraphs)} subgraph${r.subgraphs === 1 ? '' : 's'}`] : ['no subgraphs'];
  if (n.inFunctions) where.push(`${int(n.inFunctions)} in ${r.functions} function${r.functions === 1 ? '' : 's'}`);
  kv('nodes', `${int(n.total)} (${where.join(', ')})`);
  const w = r.weights;
  kv('parameters', `${int(w.total.params)} in ${int(w.total.tensors)} tensors, ${humanBytes(w.total.bytes)}`);

  out.push('', 'ops');
  const hasSub = r.ops.some((o) => o.inSubgraphs > 0);
  out.push(...table(hasSub ? ['', 'count', 'in subgraphs'] : null, r.ops.map((o) => (hasSub ? [o.op, int(o.count), o.inSubgraphs ? int(o.inSubgraphs) : ''] : [o.op, int(o.count)]))));

  if (w.total.tensors > 0) {
    const head = ['', 'tensors', 'params', 'bytes', 'share'];
    out.push('', 'weights by consuming op');
    out.push(...table(head, w.byOp.map((b) => tallyRow(b.op, b, w.total))));
    out.push('', 'weights by dtype');
    out.push(...table(head, w.byDtype.map((b) => tallyRow(b.dtype, b, w.total))));
    out.push('', 'weights live in');
    const locs: string[][] = [];
    const L = w.byLocation;
    if (L.initializer.tensors) locs.push(locationRow('initializers', L.initializer, w.total));
    if (L.constant.tensors) locs.push(locationRow('Constant nodes', L.constant, w.total));
    if (L.attribute.tensors) locs.push(locationRow('node attributes', L.attribute, w.total));
    if (w.external.tensors) locs.push(tallyRow('  of which external', w.external, w.total));
    out.push(...table([...head, ''], locs, '  ', 'lrrrrl'));
    if (w.external.files.length) {
      out.push('', 'external data files');
      out.push(
        ...table(
          ['', 'tensors', 'referenced', 'on disk'],
          w.external.files.map((f) => [f.location, int(f.tensors), humanBytes(f.bytes), f.sizeOnDisk === undefined ? '?' : f.sizeOnDisk === null ? 'missing' : humanBytes(f.sizeOnDisk)]),
        ),
      );
    }
  }
  if (r.notes.length) {
    out.push('', 'notes');
    for (const note of r.notes) out.push(`  - ${note}`);
  }
  return out.join('\n');
}
