/**
 * What the CLI shows while models compress. On a terminal (stderr is a TTY and CI is unset): one live
 * line per model in flight — id, step, percent, elapsed — redrawn in place at most 10× a second, with
 * warnings, errors and finished models printed above it. Elsewhere (CI, pipes, files): plain lines only,
 * e.g. "spam: quantize done in 0.42 s". The bundler plugin passes its own `log` instead.
 */
import type { PipelineOptions } from '../pipeline.js';

type Level = 'info' | 'warn' | 'error';
type ProgressEvent = Parameters<NonNullable<PipelineOptions['onProgress']>>[0];

export interface Reporter {
  log: (level: Level, message: string) => void;
  onProgress: (e: ProgressEvent) => void;
  /** Clears the live lines (call once, before printing a summary). */
  close(): void;
}

export interface ReporterOptions {
  stream?: NodeJS.WriteStream;
  /** Live redrawn lines; default: the stream is a TTY and the CI variable is unset. */
  live?: boolean;
  /** Print only warnings and errors. */
  quiet?: boolean;
}

export function isInteractive(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}

export function formatMs(ms: number): string {
  return ms < 1000 ? `${(ms / 1000).toFixed(2)} s` : ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)} kB`;
  if (n < 1e9) return `${(n / 1e6).toFixed(1)} MB`;
  return `${(n / 1e9).toFixed(2)} GB`;
}

const PREFIX: Record<Level, string> = { info: '', warn: 'warning: ', error: 'error: ' };

export function createReporter(opts: ReporterOptions = {}): Reporter {
  const stream = opts.stream ?? process.stderr;
  const live = opts.live ?? isInteractive(stream);
  const write = (s: string) => stream.write(s);

  if (!live) {
    return {
      log(level, message) {
        if (opts.quiet && level === 'info') return;
        write(`${PREFIX[level]}${message}\n`);
      },
      onProgress() {},
      close() {},
    };
  }

  const active = new Map<string, { step: string; fraction: number; elapsedMs: number; at: number }>();
  let drawn = 0; // live lines currently on screen
  let timer: NodeJS.Timeout | undefined;
  // Elapsed times keep moving during long steps that report no progress.
  let ticker: NodeJS.Timeout | undefined;
  let last = 0;
  const columns = () => Math.max(20, (stream.columns ?? 80) - 1);

  const clear = () => {
    if (drawn) write(`\x1b[${drawn}A\x1b[0J`);
    drawn = 0;
  };
  const draw = () => {
    timer = undefined;
    last = Date.now();
    clear();
    const idWidth = Math.max(0, ...[...active.keys()].map((id) => id.length));
    const now = Date.now();
    for (const [id, p] of active) {
      const pct = `${Math.floor(p.fraction * 100)}%`.padStart(4);
      write(`${`  ${id.padEnd(idWidth)}  ${p.step.padEnd(9)} ${pct}  ${formatMs(p.elapsedMs + now - p.at)}`.slice(0, columns())}\n`);
      drawn++;
    }
    if (active.size && !ticker) {
      ticker = setInterval(schedule, 500);
      ticker.unref();
    } else if (!active.size && ticker) {
      clearInterval(ticker);
      ticker = undefined;
    }
  };
  const schedule = () => {
    if (timer) return;
    const wait = Math.max(0, 100 - (Date.now() - last));
    timer = setTimeout(draw, wait);
    timer.unref();
  };

  return {
    log(level, message) {
      // Per-step info is what the live lines show; print only what should stay on screen.
      if (level === 'info' && !/^[^:]+: (done|cached|failed)\b/.test(message)) return;
      if (opts.quiet && level === 'info') return;
      clear();
      write(`${PREFIX[level]}${message}\n`);
      draw();
    },
    onProgress(e) {
      if (e.step === 'done') active.delete(e.id);
      else active.set(e.id, { step: e.step, fraction: Math.min(1, Math.max(0, e.fraction)), elapsedMs: e.elapsedMs, at: Date.now() });
      schedule();
    },
    close() {
      if (timer) clearTimeout(timer);
      if (ticker) clearInterval(ticker);
      timer = ticker = undefined;
      active.clear();
      clear();
    },
  };
}
