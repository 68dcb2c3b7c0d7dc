// Owns the worker side of the pool: the tasks piscina runs (through src/dispatch/worker-entry.ts, which imports this as an ES module). `channel` serves one dispatcher's
// channel — its requests and sessions — for the life of the server (channel-loop.ts); `load`
// checks a handler module before the server listens. The handler module is loaded once per worker.

import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { workerData } from 'piscina';
import { type ErrorInfo, toErrorInfo } from '../src/errors.js';
import { type AnyHandlerClass, type HandlerKind, handlerKindOf, isIdempotent } from '../src/handler.js';
import { type HandlerRef, loadHandler } from '../src/handler-module.js';
import { type ChannelTask, ChannelLoop } from './channel-loop.js';

lowerThreadPriority((workerData as { nice?: number } | undefined)?.nice ?? 0);

/** Serves one channel (requests and sessions in shared memory) until its dispatcher closes it. piscina calls this by name. */
export async function channel(task: ChannelTask & { handler: HandlerRef }): Promise<null | { error: ErrorInfo }> {
  let Handler: AnyHandlerClass;
  try {
    Handler = await loadHandler(task.handler);
  } catch (error) {
    return { error: toErrorInfo(error) };
  }
  return new ChannelLoop(Handler, task).run();
}

/** Loads the handler ahead of the first request, so a broken module fails at startup. */
export async function load(ref: HandlerRef): Promise<{ kind: HandlerKind; idempotent: boolean } | { error: ErrorInfo }> {
  try {
    const Handler = await loadHandler(ref);
    return { kind: handlerKindOf(Handler), idempotent: isIdempotent(Handler) };
  } catch (error) {
    return { error: toErrorInfo(error) }; // returned, not thrown: a thrown error's `code` would not cross threads
  }
}

/**
 * Renices this worker thread (Linux: a thread id is a valid target of setpriority), so handler
 * CPU yields to the main thread under contention. Best effort: elsewhere nothing happens.
 */
function lowerThreadPriority(nice: number): void {
  if (nice <= 0 || process.platform !== 'linux') return;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, nice);
  } catch {
    // No /proc, or not permitted: run at normal priority.
  }
}
