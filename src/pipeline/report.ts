/**
 * What a build writes next to the models: `<asset>.manifest.json` per model, the aggregate
 * `onnx-compress.json`, and `onnx-compress-report.html` (sizes as an inline SVG bar chart and the
 * accuracy table; no external assets). Pure functions from results to file contents.
 */
import type { CompressResult } from './result.js';
import type { Manifest } from './manifest.js';
import { formatBytes, formatLatency, formatLatencyChange, formatRatio, formatSizeChange } from '../format.js';
import { searchPlot, type PlotSearch } from './search/plot.js';

import { AGGREGATE_FILE, REPORT_FILE } from '../recipe/outputs.js';

export { AGGREGATE_FILE, REPORT_FILE };

/** A compressed model as written by the bundler: `fileName` is relative to the output directory. */
export interface EmittedModel {
  result: CompressResult;
  fileName: string;
}

export interface OutputFile {
  fileName: string;
  source: string;
}

/** Accuracy figures of a manifest, when it was evaluated (against labels for `before`/`after`). */
export interface AccuracyFigures {
  before?: number;
  after?: number;
  agreement?: number;
  samples?: number;
}

export function accuracyFigures(manifest: Manifest): AccuracyFigures {
  const a = manifest.accuracy;
  if (!a) return {};
  return {
    before: a.original.accuracy,
    after: a.compressed.accuracy,
    agreement: a.metrics.agreement,
    samples: a.samples,
  };
}

/** The manifest as written next to its asset: `output.file` is where the bundler put it. */
export function emittedManifest({ result, fileName }: EmittedModel): Manifest {
  return { ...result.manifest, output: { ...result.manifest.output, file: fileName } };
}

/** `<asset>.manifest.json` for each model. */
export function sidecarFiles(models: EmittedModel[]): OutputFile[] {
  return models.map((m) => ({ fileName: `${m.fileName}.manifest.json`, source: json(emittedManifest(m)) }));
}

/**
 * The sidecar manifests, the aggregate JSON and the HTML report for the models of one build.
 * `sidecarsFor`: the files whose sidecars this call writes (default all; a worker bundle wrote its own).
 */
export function reportFiles(models: EmittedModel[], sidecarsFor?: Set<string>): OutputFile[] {
  const sorted = [...models].sort((a, b) => a.result.build.id.localeCompare(b.result.build.id) || a.fileName.localeCompare(b.fileName));
  const sidecars = sidecarFiles(sidecarsFor ? sorted.filter((m) => sidecarsFor.has(m.fileName)) : sorted);
  return [...sidecars, { fileName: AGGREGATE_FILE, source: aggregateJson(sorted) }, { fileName: REPORT_FILE, source: reportHtml(sorted) }];
}

export function aggregateJson(models: EmittedModel[]): string {
  const entries = models.map((m) => [
    m.result.build.id,
    { file: m.fileName, manifestFile: `${m.fileName}.manifest.json`, cached: m.result.cached, manifest: emittedManifest(m) },
  ]);
  return json({ generatedBy: models[0]?.result.manifest.tool, models: Object.fromEntries(entries) });
}

/**
 * One line per model for the build log, e.g. `spam: 1.3 MB → 382.3 kB (0.29×), brotli 332.1 kB, accuracy 90.33 % → 90.00 %,
 * agreement 99.67 %, latency 0.98 ms → 1.15 ms (1.17×) (cached)`.
 */
export function summaryLine(r: CompressResult): string {
  const { before, after } = r.manifest.sizes;
  const acc = accuracyFigures(r.manifest);
  let line = `${r.build.id}: ${formatSizeChange(before.bytes, after.bytes)}, brotli ${formatBytes(after.brotli)}`;
  if (acc.before !== undefined && acc.after !== undefined) line += `, accuracy ${pct(acc.before)} → ${pct(acc.after)}`;
  if (acc.agreement !== undefined) line += `, agreement ${pct(acc.agreement)}`;
  const lat = r.manifest.latency;
  if (lat) line += `, latency ${formatLatencyChange(lat.original.median, lat.compressed.median)}`;
  if (lat?.web) line += `, web ${lat.web.original ? formatLatencyChange(lat.web.original.median, lat.web.compressed.median) : formatLatency(lat.web.compressed.median)}`;
  return line + (r.cached ? ' (cached)' : ` in ${(r.manifest.timings.total / 1000).toFixed(1)} s`);
}

// ---------------------------------------------------------------------------------------------------------------
// HTML report

const BAR_COLORS = { before: '#9aa5b1', after: '#2f6fde', gzip: '#5fa8d3', brotli: '#1b998b' } as const;

export function reportHtml(models: EmittedModel[]): string {
  const tool = models[0]?.result.manifest.tool;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>ONNX compression report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;color:#1d232b;max-width:76rem;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{padding:.3rem .6rem;border-bottom:1px solid #dde1e6;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td code{white-space:nowrap}.bad{color:#b3261e}.legend{margin-bottom:.6rem}.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 1rem;vertical-align:middle}.legend span:first-child{margin-left:0}
svg text{font:12px system-ui,sans-serif;fill:#1d232b}
</style></head><body>
<h1>ONNX compression report</h1>
<p>${models.length} model${models.length === 1 ? '' : 's'}${tool ? `, ${esc(tool.name)} ${esc(tool.version)}` : ''}.</p>
<h2>Sizes</h2>
<div class="legend">${Object.entries(BAR_COLORS).map(([k, c]) => `<span style="background:${c}"></span>${k === 'before' ? 'original' : k === 'after' ? 'compressed' : `compressed, ${k}`}`).join('')}</div>
${sizeChart(models)}
<h2>Sizes and accuracy</h2>
${modelTable(models)}
<h2>Per model</h2>
${models.map(modelDetails).join('\n')}
</body></html>
`;
}

function sizeChart(models: EmittedModel[]): string {
  const rowH = 16;
  const labelW = 160;
  const chartW = 520;
  const groupH = rowH * 4 + 18;
  const max = Math.max(1, ...models.map((m) => m.result.manifest.sizes.before.bytes), ...models.map((m) => m.result.manifest.sizes.after.bytes));
  const groups = models.map((m, i) => {
    const { before, after } = m.result.manifest.sizes;
    const bars: [keyof typeof BAR_COLORS, number][] = [['before', before.bytes], ['after', after.bytes], ['gzip', after.gzip], ['brotli', after.brotli]];
    const y0 = i * groupH;
    const rects = bars.map(([k, v], j) => {
      const w = Math.max(1, (v / max) * chartW);
      const y = y0 + j * rowH;
      return `<rect x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 3}" fill="${BAR_COLORS[k]}"><title>${k}: ${v} bytes</title></rect><text x="${(labelW + w + 6).toFixed(1)}" y="${y + rowH - 5}">${formatBytes(v)}</text>`;
    });
    return `<text x="0" y="${y0 + rowH * 2}">${esc(m.result.build.id)}</text>${rects.join('')}`;
  });
  const h = models.length * groupH;
  return `<svg role="img" aria-label="Model sizes before and after compression" width="${labelW + chartW + 90}" height="${h}" viewBox="0 0 ${labelW + chartW + 90} ${h}">${groups.join('')}</svg>`;
}

function modelTable(models: EmittedModel[]): string {
  const rows = models.map(({ result, fileName }) => {
    const { before, after } = result.manifest.sizes;
    const acc = accuracyFigures(result.manifest);
    const drop = acc.before !== undefined && acc.after !== undefined ? acc.before - acc.after : undefined;
    const budget = result.build.budget;
    const dropBad = drop !== undefined && budget?.maxAccuracyDrop !== undefined && drop > budget.maxAccuracyDrop;
    const agreeBad = acc.agreement !== undefined && budget?.minAgreement !== undefined && acc.agreement < budget.minAgreement;
    const steps = result.manifest.steps.map((s) => stepLabel(s.step, s.params)).join(', ');
    return `<tr><td>${esc(result.build.id)}</td><td><code>${esc(fileName)}</code></td><td>${steps}</td>
<td class="n">${formatBytes(before.bytes)}</td><td class="n">${formatBytes(after.bytes)}</td><td class="n">${formatRatio(before.bytes, after.bytes)}</td><td class="n">${formatBytes(after.brotli)}</td>
<td class="n">${opt(acc.before)}</td><td class="n">${opt(acc.after)}</td><td class="n${dropBad ? ' bad' : ''}">${drop === undefined ? '–' : (drop * 100).toFixed(2) + ' pt'}</td>
<td class="n${agreeBad ? ' bad' : ''}">${opt(acc.agreement)}</td><td>${result.cached ? 'yes' : 'no'}</td></tr>`;
  });
  return `<table><thead><tr><th>model</th><th>file</th><th>steps</th><th>original</th><th>compressed</th><th>ratio</th><th>brotli</th><th>accuracy before</th><th>accuracy after</th><th>drop</th><th>agreement</th><th>cached</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

/**
 * One model's fidelity per output (cosine and relative error mean something for any output; agreement only
 * for class scores), latency, budget status, warnings, and what each layer was stored as.
 */
function modelDetails({ result }: EmittedModel): string {
  const m = result.manifest;
  const a = m.accuracy;
  const parts: string[] = [`<h3>${esc(m.id)}</h3>`];
  const budget = budgetStatus(m);
  parts.push(`<p>Budget: <strong class="${budget.missed ? 'bad' : ''}">${esc(budget.text)}</strong>${m.device ? ` · verified on ${esc(m.device)}` : ''}</p>`);
  const search = m.steps.find((s) => s.step === 'quantize')?.totals?.search as PlotSearch | undefined;
  if (search) parts.push(searchPlot(search, (m.recipe as { budget?: Record<string, unknown> }).budget));
  if (a) {
    const rows = Object.entries(a.perOutput ?? { [a.output]: a.metrics }).map(
      ([name, o]) => `<tr><td><code>${esc(name)}</code></td><td class="n">${o.rowSize === 1 ? '–' : opt(o.agreement)}</td><td class="n">${num(o.cosine, 6)}</td><td class="n">${num(o.relRms, 4)}</td><td class="n">${num(o.maxAbs, 4)}</td></tr>`,
    );
    parts.push(`<table><thead><tr><th>output (${a.samples} samples)</th><th>agreement</th><th>cosine</th><th>relative RMS error</th><th>max abs error</th></tr></thead><tbody>${rows.join('')}</tbody></table>`);
    parts.push(latencyTable(m));
  } else parts.push('<p>Not evaluated (no <code>evaluate</code> data in the recipe).</p>');
  parts.push(webCheckLine(m));
  if (m.warnings.length) parts.push(`<ul>${m.warnings.map((w) => `<li class="bad">${esc(w)}</li>`).join('')}</ul>`);
  const simplified = simplifySummary(m);
  if (simplified) parts.push(simplified);
  const layers = m.steps.flatMap((s) => s.layers.map((l) => ({ step: s.step, ...l })));
  if (layers.length) {
    const rows = layers.map(
      (l) =>
        `<tr><td>${esc(l.step)}</td><td><code>${esc(l.name)}</code></td><td>${esc(l.op)}</td><td>${esc(l.shape.join('×'))}</td><td>${esc(l.dtypeBefore)} → ${esc(l.dtypeAfter)}${asked(l)}${activationsOf(l)}</td><td class="n">${formatBytes(l.bytesBefore)} → ${formatBytes(l.bytesAfter)}</td><td class="n">${num(l.error, 4)}</td><td class="n">${num(sensitivityOf(l), 3)}</td></tr>`,
    );
    parts.push(
      `<details><summary>${layers.length} layers: precision and error</summary><table><thead><tr><th>step</th><th>layer</th><th>op</th><th>shape</th><th>stored as</th><th>bytes</th><th>rel. error</th><th title="the output error this layer alone adds at its precision, as the precision search measured it">sensitivity</th></tr></thead><tbody>${rows.join('\n')}</tbody></table></details>`,
    );
  }
  return parts.join('\n');
}

/** Latency of both models in onnxruntime-node and, when measured, onnxruntime-web: median, p90 and the ratio of medians. */
function latencyTable(m: Manifest): string {
  const l = m.latency;
  if (!l) return '';
  const cell = (x?: { median: number; p90: number }) => (x ? `<td class="n">${formatLatency(x.median)}</td><td class="n">${formatLatency(x.p90)}</td>` : '<td class="n">–</td><td class="n">–</td>');
  const ratio = (o?: { median: number }, c?: { median: number }) => `<td class="n">${o && c && Number.isFinite(o.median) && Number.isFinite(c.median) ? formatRatio(o.median, c.median) : '–'}</td>`;
  const rows = [
    `<tr><td>${esc(l.runtime ?? 'onnxruntime-node')} (${esc(l.device)})${l.session ? `<br><small>${esc(l.session)}</small>` : ''}</td>${cell(l.original)}${cell(l.compressed)}${ratio(l.original, l.compressed)}</tr>`,
  ];
  if (l.web) {
    const note = l.web.originalError ? `<br><small class="bad">original: ${esc(l.web.originalError)}</small>` : '';
    rows.push(`<tr><td>${esc(l.web.runtime)}${note}</td>${cell(l.web.original)}${cell(l.web.compressed)}${ratio(l.web.original, l.web.compressed)}</tr>`);
  }
  const runs = l.runs !== undefined ? ` (${l.runs} timed run${l.runs === 1 ? '' : 's'} each after ${l.warmup ?? 2} warm-up runs, one sample)` : ' (one sample)';
  return `<table><thead><tr><th>latency${esc(runs)}</th><th>original median</th><th>p90</th><th>compressed median</th><th>p90</th><th title="compressed median / original median: below 1× is faster">ratio</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

/** What the web check found: loads, the difference per output, or why it did not run. */
function webCheckLine(m: Manifest): string {
  const w = m.webCheck;
  if (!w) return '';
  if (!w.checked) return `<p>Web check: not run (${esc(w.reason ?? 'no reason recorded')}).</p>`;
  const outs = (w.outputs ?? []).map((o) => `<code>${esc(o.name)}</code> max |Δ| ${num(o.maxAbsDiff, 3)}${o.ok ? ' ≤ ' : ' <strong class="bad">over</strong> '}${num(o.allowed, 3)}`);
  const timing = w.loadMs !== undefined ? `, load ${formatLatency(w.loadMs)}, run ${formatLatency(w.runMs ?? NaN)}` : '';
  return `<p>Web check (${esc(w.runtime ?? 'onnxruntime-web')}, ${esc(w.input ?? '')}${timing}): ${w.loads ? 'loads and runs' : 'does not load'}${outs.length ? `; against onnxruntime-node: ${outs.join(', ')}` : ''}.</p>`;
}

/** The precision a layer was asked for and got, and why they differ (e.g. " (asked int4:32, got int8: its 4-bit form …)"). */
function asked(l: object): string {
  const { requested, delivered, reason } = l as { requested?: string; delivered?: string; reason?: string };
  if (!requested) return '';
  if (requested === delivered) return ` (${esc(requested)})`;
  return ` <span class="bad">(asked ${esc(requested)}, got ${esc(delivered ?? '?')}${reason ? `: ${esc(reason)}` : ''})</span>`;
}

/** Static quantization: the activation type and calibration (e.g. " · activations uint8 (minmax)"), or why they stayed float. */
function activationsOf(l: object): string {
  const { activations, calibrate, activationsReason } = l as { activations?: string; calibrate?: string; activationsReason?: string };
  if (!activations) return '';
  if (activations === 'float32') return ` · <span class="bad">activations float32${activationsReason ? `: ${esc(activationsReason)}` : ''}</span>`;
  return ` · activations ${esc(activations)}${calibrate ? ` (${esc(calibrate)})` : ''}`;
}

/** The precision search's error for this layer alone at the precision it was asked for (undefined when no search ran). */
function sensitivityOf(l: object): number | undefined {
  const { requested, sensitivity, activations } = l as { requested?: string; sensitivity?: Record<string, number>; activations?: string };
  // A static layer with 8-bit activations was measured as the search's int8+a8 choice.
  if (sensitivity && requested === 'int8' && activations && activations !== 'float32' && sensitivity['int8+a8'] !== undefined) return sensitivity['int8+a8'];
  return requested && sensitivity ? sensitivity[requested] : undefined;
}

/** The simplify step's nodes and bytes before/after, and the nodes each pass removed. */
function simplifySummary(m: Manifest): string | undefined {
  const t = m.steps.find((s) => s.step === 'simplify')?.totals as
    | { nodes: { before: number; after: number }; bytes: { before: number; after: number }; passes: { pass: string; nodes: [number, number] }[] }
    | undefined;
  if (!t?.nodes) return undefined;
  const removed = new Map<string, number>();
  for (const p of t.passes) removed.set(p.pass, (removed.get(p.pass) ?? 0) + p.nodes[0] - p.nodes[1]);
  const passes = [...removed].map(([p, n]) => `${p} ${n > 0 ? '−' : '+'}${Math.abs(n)}`).join(', ');
  return `<p>Simplified: ${t.nodes.before} → ${t.nodes.after} nodes, ${formatBytes(t.bytes.before)} → ${formatBytes(t.bytes.after)}${passes ? ` (${esc(passes)})` : ''}</p>`;
}

function budgetStatus(m: Manifest): { text: string; missed: boolean } {
  const b = (m.recipe as { budget?: Record<string, unknown> }).budget;
  if (!b) return { text: 'none set', missed: false };
  const limits = Object.entries(b)
    .filter(([k]) => k !== 'onFail')
    .map(([k, v]) => `${k} ${String(v)}`)
    .join(', ');
  const missed = m.warnings.filter((w) => w.startsWith('budget:'));
  return missed.length ? { text: `missed (${limits}): ${missed.map((w) => w.slice(8)).join('; ')}`, missed: true } : { text: `met (${limits})`, missed: false };
}

function num(v: number | undefined, digits: number): string {
  return v === undefined || !Number.isFinite(v) ? '–' : v.toPrecision(digits);
}

/** e.g. `quantize int8`, `prune 0.5`. */
function stepLabel(step: string, params: Record<string, unknown>): string {
  const main = params.dtype ?? params.rate ?? params.rank ?? params.ratio ?? params.energy;
  return esc(main === undefined ? step : `${step} ${String(main)}`);
}

function opt(v: number | undefined): string {
  return v === undefined ? '–' : pct(v);
}

function pct(v: number): string {
  return `${(v * 100).toFixed(2)} %`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}
