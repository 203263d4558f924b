/**
 * A progress bar for long steps, on a terminal: one line, redrawn in place (carriage return + clear to
 * the end of the line, the way Vite draws its own "transforming…" line), for a step that has run over
 * a second — `[onnx-compress] spam: quantize [#######-------------] 35% 4 s` — and erased before any
 * line the plugin logs and when the step ends. Models compressing at once take turns on the line.
 * Where stderr is not a terminal, or CI is set, nothing is drawn (the build log gets a plain line every
 * 5 s instead, see eventLogger).
 */
export interface ProgressLine {
  /** A step's progress (undefined: started, no fraction known yet). */
  update(model: string, step: string, fraction: number | undefined): void;
  done(model: string): void;
  /** Erases the line (before a log line). */
  clear(): void;
}

const WIDTH = 20;
const SHOW_AFTER_MS = 1000;

export function isTerminal(stream: NodeJS.WriteStream = process.stderr): boolean {
  return Boolean(stream.isTTY) && !process.env.CI;
}

export function progressLine(stream: NodeJS.WriteStream = process.stderr, now: () => number = Date.now): ProgressLine {
  const active = new Map<string, { step: string; fraction?: number; since: number }>();
  let shown = false;
  let last = 0;
  const clear = () => {
    if (shown) stream.write('\r\x1b[K');
    shown = false;
  };
  const draw = (force = false) => {
    const t = now();
    if (!force && t - last < 100) return;
    // The longest-running step holds the line.
    const [model, s] = [...active].filter(([, v]) => t - v.since >= SHOW_AFTER_MS).sort((a, b) => a[1].since - b[1].since)[0] ?? [];
    if (!model || !s) return clear();
    last = t;
    const filled = s.fraction === undefined ? 0 : Math.round(s.fraction * WIDTH);
    const bar = s.fraction === undefined ? '' : `[${'#'.repeat(filled)}${'-'.repeat(WIDTH - filled)}] ${Math.floor(s.fraction * 100)}% `;
    const more = active.size > 1 ? ` (+${active.size - 1} more)` : '';
    const text = `[onnx-compress] ${model}: ${s.step} ${bar}${Math.round((t - s.since) / 1000)} s${more}`;
    stream.write(`\r\x1b[K${text.slice(0, Math.max(20, (stream.columns ?? 80) - 1))}`);
    shown = true;
  };
  return {
    update(model, step, fraction) {
      const was = active.get(model);
      active.set(model, { step, fraction: fraction ?? (was?.step === step ? was.fraction : undefined), since: was?.step === step ? was.since : now() });
      draw();
    },
    done(model) {
      active.delete(model);
      if (active.size) draw(true);
      else clear();
    },
    clear,
  };
}
