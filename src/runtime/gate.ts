/**
 * The session gate: a build runs its in-process onnxruntime work under `withSessionGate(ready, …)`, and
 * every session created in it (src/runtime/session.ts createSession) first awaits `ready`. The pipeline
 * passes the isolated run of the user's source model: a model that would abort onnxruntime is caught
 * in a child before this process loads it, or anything made from it — and only when something
 * in-process needs onnxruntime at all (a build that only rounds weights never does).
 *
 * A module of its own, without onnxruntime: the pipeline imports it on every build, cache hits included.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

const gate = new AsyncLocalStorage<() => Promise<void>>();

export function withSessionGate<T>(ready: () => Promise<void>, fn: () => Promise<T>): Promise<T> {
  return gate.run(ready, fn);
}

/** Waits for the gate of the current build, if any. */
export async function passSessionGate(): Promise<void> {
  await gate.getStore()?.();
}
