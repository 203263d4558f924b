/**
 * What the pipeline tells its caller while it works: typed events through one callback
 * (`PipelineOptions.onEvent`). The CLI's terminal reporter (src/cli/reporter.ts) and the bundler plugin
 * (src/plugin/models.ts) render them; neither parses text.
 *
 * Every build emits `model-start` first and exactly one of `model-done` / `error` last (compressRecipe adds
 * an `error` after `model-done` when its `onResult` callback fails for that build). In between:
 *   cache hit   → cache-hit
 *   same key in flight → shared (the first caller's build emits the work)
 *   miss        → step-start / step-progress* / step-log* / step-done for each phase, in order
 *                 (hash, read, calibration?, <steps: prune, lowrank, distill, quantize>, encode, data?,
 *                 verify, evaluate?, sizes), a `verify` event after verification and a `measure` event
 *                 once sizes (and accuracy) are known
 *   any time    → warning (also recorded in the manifest's `warnings` unless it is about the cache)
 */
import type { EvalReport } from '../eval/evaluate.js';
import type { SizeStats } from './manifest.js';

interface Base {
  /** The build id: `<model>` or `<model>.<variant>`. */
  model: string;
  /** Since the build's compressBuild call began. */
  elapsedMs: number;
}

export type PipelineEvent =
  | (Base & { kind: 'model-start' })
  | (Base & { kind: 'cache-hit'; key: string })
  /** A build with the same cache key is in progress: this one shares its result. */
  | (Base & { kind: 'shared'; key: string })
  | (Base & { kind: 'step-start'; step: string })
  /** Within a step that reports progress (steps and data loading); `fraction` in [0, 1]. */
  | (Base & { kind: 'step-progress'; step: string; fraction: number })
  /** A message a step gives about its work (layers refit, training loss), for verbose output. */
  | (Base & { kind: 'step-log'; step: string; message: string })
  | (Base & { kind: 'step-done'; step: string; ms: number })
  /** The output loaded and ran in onnxruntime on `device`. */
  | (Base & { kind: 'verify'; device: string })
  | (Base & { kind: 'measure'; before: SizeStats; after: SizeStats; accuracy?: EvalReport })
  /** `message` is as recorded in the manifest (e.g. "quantize: …", "budget: …"); `step` names its source when one did. */
  | (Base & { kind: 'warning'; step?: string; message: string })
  | (Base & { kind: 'model-done'; cached: boolean; bytesBefore: number; bytesAfter: number; key: string })
  | (Base & { kind: 'error'; error: unknown });

export type PipelineEventKind = PipelineEvent['kind'];
export type EventListener = (event: PipelineEvent) => void;

/** Distributes over the union: one event without its common fields. */
type Omit2<T, K extends keyof never> = T extends unknown ? Omit<T, K> : never;
export type EventBody = Omit2<PipelineEvent, 'model' | 'elapsedMs'>;

/** Emits events for one build; a listener that throws cannot break the build. */
export function emitterFor(model: string, t0: number, listener: EventListener | undefined): (e: EventBody) => void {
  if (!listener) return () => {};
  return (e) => {
    try {
      listener({ ...e, model, elapsedMs: Math.round((performance.now() - t0) * 100) / 100 } as PipelineEvent);
    } catch {
      // a rendering bug is not the build's failure
    }
  };
}
