/**
 * Giving memory back before onnxruntime takes its own.
 *
 * A build drops its last references to the source and output buffers (hundreds of MB of ArrayBuffers)
 * just before onnxruntime loads the written output. V8 frees an ArrayBuffer's memory only when a
 * garbage collection finds it unreachable, and onnxruntime's native allocations do not prompt one, so
 * without help both copies are alive at the same moment: peak memory = source + output + ORT's copy.
 * One full collection at that point costs a few milliseconds on a small heap.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

let gc: (() => void) | undefined | null;

/** Runs a full garbage collection when the engine allows it (no-op otherwise). */
export function collectGarbage(): void {
  if (gc === undefined) {
    const existing = (globalThis as { gc?: () => void }).gc;
    if (typeof existing === 'function') gc = existing;
    else {
      try {
        // --expose-gc set at run time takes effect for new contexts: take `gc` from one.
        v8.setFlagsFromString('--expose-gc');
        const fn = vm.runInNewContext('gc') as unknown;
        gc = typeof fn === 'function' ? (fn as () => void) : null;
      } catch {
        gc = null;
      }
    }
  }
  // Twice: V8 frees the memory of dead ArrayBuffers on a background thread after a collection, and the
  // next collection finishes that sweep first, so the memory is back before this returns.
  gc?.();
  gc?.();
}
