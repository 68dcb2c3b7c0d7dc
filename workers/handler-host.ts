// Owns the worker side of the pool: the piscina task entry. It loads the handler module once per
// worker, runs every request of a batch through it (synchronous handlers back to back, async ones
// interleaved), and packs the replies into one transferable buffer. Sessions
// (StreamRequestHandler) are long-running tasks over a MessagePort; many share a worker while
// they await. A handler that throws fails only its own request; nothing a handler does can fail
// the batch short of killing the worker.

import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { BroadcastChannel, type MessagePort } from 'node:worker_threads';
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { type BatchResult, type BatchTask, type LateReply, ReplyPacker, requestAt } from '../src/dispatch/batch.js';
import { type ErrorInfo, toErrorInfo } from '../src/errors.js';
import { type ClientAddress, type HandlerClass, type HandlerKind, type ServerInfo, handlerKindOf } from '../src/handler.js';
import { type HandlerRef, loadHandler, loadedHandler } from '../src/handler-module.js';
import { isThenable, runHandler } from '../src/run-handler.js';
import type { SessionLimits } from '../src/session/protocol.js';
import { runSession } from '../src/session/run-session.js';

lowerThreadPriority((workerData as { nice?: number } | undefined)?.nice ?? 0);

/** Runs one batch. piscina calls the default export. */
export default function runBatch(task: BatchTask): unknown {
  const Handler = loadedHandler(task.handler) as HandlerClass | undefined;
  if (!Handler) {
    return loadHandler(task.handler).then(
      () => runBatch(task),
      (error: unknown) => failAll(task, error),
    );
  }

  const started = performance.now();
  const count = task.meta.length / 2;
  const packer = new ReplyPacker(count);
  let pending: Map<number, Promise<Buffer | null>> | null = null;
  for (let i = 0; i < count; i++) {
    const { request, peer } = requestAt(task, i);
    try {
      const reply = runHandler(Handler, request, peer, task.server);
      if (isThenable<Buffer | null>(reply)) {
        (pending ??= new Map()).set(i, reply);
        reply.then(
          (value) => packer.reply(i, value),
          (error: unknown) => packer.fail(i, toErrorInfo(error)),
        );
      } else {
        packer.reply(i, reply);
      }
    } catch (error) {
      packer.fail(i, toErrorInfo(error));
    }
  }
  // The cost that sizes batches is the synchronous (CPU) part: time an async handler spends
  // awaiting does not occupy the worker, and counting it would shrink batches for nothing.
  const cpuMs = performance.now() - started;
  if (!pending) return transferable(packer.build(cpuMs));
  // Async handlers that settle within this turn (no real I/O) travel with the batch; the rest
  // report later, so a slow or stuck handler holds neither the batch nor the worker.
  const awaiting = pending;
  // allSettled: a handler that rejects is its own request's failure, never the batch's.
  return Promise.race([Promise.allSettled(awaiting.values()), nextTurn()]).then(() => {
    for (const [index, reply] of awaiting) if (!packer.settled(index)) reportLate(task, index, reply);
    return transferable(packer.build(cpuMs));
  });
}

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const lateChannels = new Map<string, BroadcastChannel>();

function reportLate(task: BatchTask, index: number, reply: Promise<Buffer | null>): void {
  const { channel: name, batch } = task.late;
  let channel = lateChannels.get(name);
  if (!channel) {
    channel = new BroadcastChannel(name);
    channel.unref();
    lateChannels.set(name, channel);
  }
  const post = (message: LateReply) => channel.postMessage(message);
  reply.then(
    (value) => post({ batch, index, reply: value, error: null }),
    (error: unknown) => post({ batch, index, reply: null, error: toErrorInfo(error) }),
  );
}

/** Loads the handler ahead of the first request, so a broken module fails at startup. */
export async function load(ref: HandlerRef): Promise<{ kind: HandlerKind } | { error: ErrorInfo }> {
  try {
    return { kind: handlerKindOf(await loadHandler(ref)) };
  } catch (error) {
    return { error: toErrorInfo(error) }; // returned, not thrown: a thrown error's `code` would not cross threads
  }
}

export interface SessionTask {
  handler: HandlerRef;
  server: ServerInfo;
  clientAddress: ClientAddress;
  port: MessagePort;
  limits: SessionLimits;
}

/** Runs one StreamRequestHandler for the life of its connection. */
export async function session(task: SessionTask): Promise<null> {
  let Handler;
  try {
    Handler = await loadHandler(task.handler);
  } catch (error) {
    task.port.postMessage({ t: 'end', error: toErrorInfo(error) });
    task.port.unref();
    return null;
  }
  await runSession(Handler, task.port, task.clientAddress, task.server, task.limits);
  return null;
}

function failAll(task: BatchTask, error: unknown): unknown {
  const count = task.meta.length / 2;
  const packer = new ReplyPacker(count);
  const info = toErrorInfo(error);
  for (let i = 0; i < count; i++) packer.fail(i, info);
  return transferable(packer.build(0));
}

/** Marks a result so piscina transfers its two buffers instead of cloning them. */
function transferable(result: BatchResult): unknown {
  return move(new TransferableResult(result) as unknown as ArrayBuffer);
}

class TransferableResult {
  constructor(readonly result: BatchResult) {}
  get [transferableSymbol](): ArrayBuffer[] {
    return [this.result.data.buffer as ArrayBuffer, this.result.ends.buffer as ArrayBuffer];
  }
  get [valueSymbol](): BatchResult {
    return this.result;
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
