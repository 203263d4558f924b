/**
 * What `onnx-compress build` shows while models compress, rendered from the pipeline's events. On a
 * terminal (stderr is a TTY and CI is unset): one live line per model in flight — id, step, percent,
 * elapsed — redrawn in place at most 10× a second, with warnings and finished models printed above it.
 * Elsewhere (CI, pipes, files): plain lines only. Either way a cold build prints one line per model
 * ("spam: done in 1.6 s, 1.3 MB → 382.3 kB") plus its warnings; --verbose adds each step's timing and the
 * steps' own messages. Errors are left to the caller (the build command prints them after the run).
 */
import { formatMs, formatSizeChange } from '../format.js';
import type { PipelineEvent } from '../pipeline/events.js';

export interface Reporter {
  onEvent: (e: PipelineEvent) => void;
  /** Clears the live lines (call once, before printing a summary). */
  close(): void;
}

export interface ReporterOptions {
  stream?: NodeJS.WriteStream;
  /** Live redrawn lines; default: the stream is a TTY and the CI variable is unset. */
  live?: boolean;
  /** Print only warnings. */
  quiet?: boolean;
  /** Also print each step's time and the steps' messages. */
  verbose?: boolean;
}

export function isInteractive(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}

/** The line an event leaves on screen, or undefined for events the live lines (or nothing) show. */
export function eventLine(e: PipelineEvent, opts: { quiet?: boolean; verbose?: boolean } = {}): string | undefined {
  if (e.kind === 'warning') return `warning: ${e.model}: ${e.message}`;
  if (opts.quiet) return undefined;
  switch (e.kind) {
    case 'model-done': {
      const sizes = formatSizeChange(e.bytesBefore, e.bytesAfter);
      return `${e.model}: ${e.cached ? "cached" : "done"} in ${formatMs(e.elapsedMs)}, ${sizes}`;
    }
    case 'step-done':
      return opts.verbose ? `${e.model}: ${e.step} done in ${formatMs(e.ms)}` : undefined;
    case 'step-log':
      return opts.verbose ? `${e.model}: ${e.step}: ${e.message}` : undefined;
    case 'shared':
      return opts.verbose ? `${e.model}: same content as a build in progress, sharing its result` : undefined;
    default:
      return undefined;
  }
}

export function createReporter(opts: ReporterOptions = {}): Reporter {
  const stream = opts.stream ?? process.stderr;
  const live = opts.live ?? isInteractive(stream);
  const write = (s: string) => stream.write(s);

  if (!live) {
    return {
      onEvent(e) {
        const line = eventLine(e, opts);
        if (line !== undefined) write(`${line}\n`);
      },
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
  const set = (e: PipelineEvent & { step: string }, fraction: number) =>
    active.set(e.model, { step: e.step, fraction: Math.min(1, Math.max(0, fraction)), elapsedMs: e.elapsedMs, at: Date.now() });

  return {
    onEvent(e) {
      if (e.kind === 'step-start') set(e, 0);
      else if (e.kind === 'step-progress') set(e, e.fraction);
      else if (e.kind === 'step-done') set(e, 1);
      else if (e.kind === 'model-done' || e.kind === 'error') active.delete(e.model);
      const line = eventLine(e, opts);
      if (line !== undefined) {
        clear();
        write(`${line}\n`);
        draw();
      } else schedule();
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
