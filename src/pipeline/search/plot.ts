/**
 * The size–fidelity trade-off of the precision search as an inline SVG: one point per assignment the
 * search measured (estimated bytes across, the budget's headline figure up), the chosen one marked,
 * and the budget's limits drawn as lines. Pure: manifest data in, markup out.
 */
export interface PlotPoint {
  label: string;
  bytes: number;
  meets: boolean;
  [figure: string]: unknown;
}

export interface PlotSearch {
  figure: string;
  chosen: number;
  samples: number;
  points: PlotPoint[];
}

const LIMIT_OF: Record<string, string> = { accuracyDrop: 'maxAccuracyDrop', agreement: 'minAgreement', cosine: 'minCosine', relRms: 'maxRelRms', maxAbs: 'maxAbsError' };
const NAME_OF: Record<string, string> = { accuracyDrop: 'accuracy drop', agreement: 'agreement', cosine: 'cosine', relRms: 'relative RMS error', maxAbs: 'max abs error' };

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function kb(b: number): string {
  return b >= 1e6 ? `${(b / 1e6).toFixed(2)} MB` : `${(b / 1e3).toFixed(1)} kB`;
}

export function searchPlot(s: PlotSearch, budget: Record<string, unknown> = {}): string {
  const W = 560;
  const H = 260;
  const L = 84;
  const B = 40;
  const T = 14;
  const R = 36;
  // Similarities near 1 are drawn as their distance from 1 (1 − cosine), on a log scale when they
  // span more than a decade: 0.9995 and 0.99999 are then far apart, as their errors are.
  const distance = s.figure === 'cosine' || s.figure === 'agreement';
  const raw = (p: PlotPoint) => p[s.figure] as number;
  const pts0 = s.points.filter((p) => Number.isFinite(raw(p)) && Number.isFinite(p.bytes));
  if (!pts0.length) return '';
  const rawLimit = budget[LIMIT_OF[s.figure]] as number | undefined;
  const d = (v: number) => (distance ? 1 - v : v);
  const positives = [...pts0.map((p) => d(raw(p))), ...(rawLimit !== undefined ? [d(rawLimit)] : [])].filter((v) => v > 0);
  const log = positives.length > 1 && Math.max(...positives) / Math.min(...positives) > 10;
  const floor = log ? Math.min(...positives) / 2 : 0;
  const tf = (v: number) => (log ? Math.log10(Math.max(v, floor)) : v);
  const fig = (p: PlotPoint) => tf(d(raw(p)));
  const pts = pts0;
  const limit = rawLimit === undefined ? undefined : tf(d(rawLimit));
  const axisName = `${distance ? `1 − ${NAME_OF[s.figure]}` : NAME_OF[s.figure] ?? s.figure}${log ? ' (log)' : ''}`;
  const tickLabel = (y: number) => (log ? (10 ** y).toExponential(1) : Math.abs(y) < 1e-3 && y !== 0 ? y.toExponential(2) : y.toPrecision(3));
  const maxBytes = budget.maxBytes as number | undefined;
  const ys = pts.map(fig).concat(limit !== undefined ? [limit] : []);
  const xs = pts.map((p) => p.bytes).concat(maxBytes !== undefined ? [maxBytes] : []);
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  let [x0, x1] = [Math.min(...xs) * 0.9, Math.max(...xs)];
  if (y1 - y0 < 1e-12) [y0, y1] = [y0 - 0.5 * (Math.abs(y0) || 1) * 0.01, y1 + 0.5 * (Math.abs(y1) || 1) * 0.01];
  const pad = (y1 - y0) * 0.08;
  y0 -= pad;
  y1 += pad;
  x1 += (x1 - x0) * 0.05;
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#8a949e"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#8a949e"/>`);
  for (let i = 0; i <= 4; i++) {
    const xv = x0 + ((x1 - x0) * i) / 4;
    const yv = y0 + ((y1 - y0) * i) / 4;
    parts.push(`<text x="${px(xv).toFixed(1)}" y="${H - B + 16}" text-anchor="middle">${kb(xv)}</text>`);
    parts.push(`<text x="${L - 6}" y="${(py(yv) + 4).toFixed(1)}" text-anchor="end">${tickLabel(yv)}</text>`);
  }
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">size (estimated; built points measured)</text>`);
  parts.push(`<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">${esc(axisName)}</text>`);
  if (limit !== undefined) {
    const y = py(limit).toFixed(1);
    parts.push(`<line class="limit" x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" stroke="#b3261e" stroke-dasharray="5 4"/><text x="${W - R}" y="${(Number(y) - 4).toFixed(1)}" text-anchor="end" fill="#b3261e">${esc(LIMIT_OF[s.figure])} ${rawLimit}</text>`);
  }
  if (maxBytes !== undefined) {
    const x = px(maxBytes).toFixed(1);
    parts.push(`<line class="limit" x1="${x}" y1="${T}" x2="${x}" y2="${H - B}" stroke="#b3261e" stroke-dasharray="5 4"/><text x="${(Number(x) + 4).toFixed(1)}" y="${H - B - 6}" fill="#b3261e">maxBytes ${maxBytes}</text>`);
  }
  s.points.forEach((p, i) => {
    if (!pts.includes(p)) return;
    const chosen = i === s.chosen;
    const cls = `pt${chosen ? ' chosen' : ''}${p.meets ? ' meets' : ''}`;
    const fill = p.meets ? '#1b998b' : '#9aa5b1';
    parts.push(
      `<circle class="${cls}" cx="${px(p.bytes).toFixed(1)}" cy="${py(fig(p)).toFixed(1)}" r="${chosen ? 7 : 4}" fill="${fill}"${chosen ? ' stroke="#1d232b" stroke-width="2"' : ''}><title>${esc(p.label)}: ${p.bytes} bytes, ${esc(NAME_OF[s.figure] ?? s.figure)} ${raw(p).toPrecision(6)}${p.meets ? ' (meets the budget)' : ''}${chosen ? ' — chosen' : ''}</title></circle>`,
    );
  });
  const chosen = s.points[s.chosen];
  const caption = `Precision search: ${s.points.length} assignments measured on ${s.samples} search samples; chosen: ${chosen ? esc(chosen.label) : '–'} (ringed). Green: meets the budget.`;
  return `<figure><svg role="img" aria-label="Size and fidelity of the precision assignments the search measured" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${parts.join('')}</svg><figcaption>${caption}</figcaption></figure>`;
}
