/** Human-readable sizes and durations, as the CLI and the plugin print them. */

export function formatMs(ms: number): string {
  return ms < 1000 ? `${(ms / 1000).toFixed(2)} s` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

/**
 * The one size-ratio notation: compressed bytes as a multiple of the original, `0.29×` (smaller is
 * better, as in the README's tables) — never a percentage in one place and `3.4×` in another.
 */
export function formatRatio(before: number, after: number): string {
  return before > 0 ? `${(after / before).toFixed(2)}×` : '–';
}

/** `1.3 MB → 382.3 kB (0.29×)`. */
export function formatSizeChange(before: number, after: number): string {
  return `${formatBytes(before)} → ${formatBytes(after)} (${formatRatio(before, after)})`;
}

/** A latency: `0.84 ms`, `12.3 ms`, `153 ms`. */
export function formatLatency(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  return `${ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0)} ms`;
}

/** `0.84 ms → 0.79 ms (0.94×)`: the ratio as for sizes, compressed / original (below 1× is faster). */
export function formatLatencyChange(before: number, after: number): string {
  return `${formatLatency(before)} → ${formatLatency(after)} (${Number.isFinite(before) && Number.isFinite(after) ? formatRatio(before, after) : '–'})`;
}
