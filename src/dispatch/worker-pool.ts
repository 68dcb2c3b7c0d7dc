// Owns the worker threads: a fixed-size piscina pool (minThreads = maxThreads, so no thread is
// started or reaped under load) and the count of pool tasks outstanding, which is how
// dispatchers know when workers are idle and when the pool is full. One pool may serve several
// servers; each server's dispatcher batches its own requests into it.

import type { MessagePort, ResourceLimits } from 'node:worker_threads';
import type { HandlerKind } from '../handler.js';
import { performance } from 'node:perf_hooks';
import { Piscina } from 'piscina';
import { type ErrorInfo, ErrorCodes, SockservError, fromErrorInfo } from '../errors.js';
import type { HandlerRef } from '../handler-module.js';
import { type Logger, stderrLogger } from '../logger.js';
import type { BatchResult, BatchTask } from './batch.js';
import { workerEntryUrl } from './worker-entry.js';

const DEFAULT_WORKER_NICE = 10;

/** Concurrent session tasks a worker may hold, beyond the batch slots. */
const SESSIONS_PER_WORKER = 100_000;

/** Options of a WorkerPool made by hand (to share one between servers with the `pool` option). */
export interface WorkerPoolOptions {
  /** Worker threads. Default 1 (a Threading server passes its `workers` option, which defaults to the available parallelism). */
  workers?: number;
  /** Tasks each worker holds at once: one running, the rest waiting there (hides the round trip). Default 2. */
  tasksPerWorker?: number;
  /** Per-worker V8 heap limits: a handler that exhausts its heap kills only its worker. */
  resourceLimits?: ResourceLimits;
  /** Shorthand for resourceLimits.maxOldGenerationSizeMb. */
  workerHeapMb?: number;
  /**
   * Nice value of the worker threads (Linux; ignored elsewhere). Default 10: under CPU
   * contention the main thread — the multiplexer every connection waits on — runs first, so a
   * saturated pool cannot stall accepts, reads and writes. 0 keeps workers at normal priority.
   */
  workerNice?: number;
  /** Where worker deaths are logged. Default: stderrLogger. */
  logger?: Logger;
}

/**
 * The worker threads handlers run on (a fixed-size piscina pool). A Threading server makes its
 * own; make one yourself and pass it as the `pool` option to share it between servers — then
 * close it yourself after them.
 */
export class WorkerPool {
  /** Worker threads in the pool. */
  readonly workers: number;
  /** Tasks the pool takes at once: workers × tasksPerWorker. */
  readonly slots: number;
  readonly #piscina: Piscina;
  readonly #logger: Logger;
  readonly #slotListeners = new Set<() => void>();
  #outstanding = 0;
  #closing = false;
  #busyMs = 0;
  readonly #startedAt = performance.now();

  constructor(options: WorkerPoolOptions = {}) {
    const workers = options.workers ?? 1;
    const tasksPerWorker = options.tasksPerWorker ?? 2;
    this.workers = workers;
    this.slots = workers * tasksPerWorker;
    this.#logger = options.logger ?? stderrLogger;
    this.#piscina = new Piscina({
      filename: workerEntryUrl().href,
      minThreads: workers,
      maxThreads: workers,
      // Batches are bounded by our own slot count; sessions (long-lived, mostly awaiting) need many
      // tasks per worker. maxConnections bounds sessions.
      concurrentTasksPerWorker: tasksPerWorker + SESSIONS_PER_WORKER,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      // 'sync' would block an idle worker's event loop in Atomics.wait: async handlers still
      // awaiting after their batch returned (late replies) would not progress until the next task.
      atomics: 'async',
      resourceLimits: { maxOldGenerationSizeMb: options.workerHeapMb, ...options.resourceLimits },
      workerData: { nice: options.workerNice ?? DEFAULT_WORKER_NICE },
    });
    // Without a listener, an error raised in a worker outside any task would crash the process.
    this.#piscina.on('error', (err: unknown) => {
      this.#logger.error({ err, code: ErrorCodes.WORKER_DIED }, 'worker error outside a task');
    });
    this.#piscina.on('workerDestroy', () => {
      if (!this.#closing) this.#logger.warn({ code: ErrorCodes.WORKER_DIED }, 'worker died; piscina starts a replacement');
    });
  }

  /** Slots not holding a task. */
  get freeSlots(): number {
    return this.slots - this.#outstanding;
  }

  /** Workers with no task, assuming tasks go to the least busy worker (piscina's balancer). */
  get idleWorkers(): number {
    return Math.max(0, this.workers - this.#outstanding);
  }

  /**
   * Fraction of worker time spent running handlers since the pool started (0..1), from the CPU
   * time workers report per batch. (piscina 5.3's own `utilization` is off by 1000×.)
   */
  get utilization(): number {
    const wallMs = performance.now() - this.#startedAt;
    return wallMs > 0 ? Math.min(1, this.#busyMs / (wallMs * this.workers)) : 0;
  }

  /** Adds handler CPU time a worker reported. */
  recordBusy(ms: number): void {
    this.#busyMs += ms;
  }

  /** Loads the handler in every worker and says its kind; rejects with ERR_HANDLER_LOAD / ERR_HANDLER_INVALID. */
  async preload(ref: HandlerRef): Promise<HandlerKind> {
    const outcomes: Array<{ kind: HandlerKind } | { error: ErrorInfo }> = await Promise.all(
      Array.from({ length: this.workers }, () => this.#piscina.run(ref, { name: 'load' })),
    );
    for (const outcome of outcomes) if ('error' in outcome) throw fromErrorInfo(outcome.error, ErrorCodes.HANDLER_LOAD);
    return (outcomes[0] as { kind: HandlerKind }).kind;
  }

  /** Runs one session task (not counted in the batch slots); resolves when its handler returned. */
  async runSession(task: object, port: MessagePort): Promise<void> {
    if (this.#closing) throw new SockservError(ErrorCodes.SERVER_CLOSED, 'the worker pool is closed');
    await this.#piscina.run(task, { name: 'session', transferList: [port] });
  }

  /** Runs one batch; `done` gets the result or the reason the task failed (worker death). */
  /**
   * Runs one batch; `done` gets the result or the reason the task failed (worker death, or
   * ERR_REQUEST_TIMEOUT when it ran past `timeoutMs` — aborting a running piscina task
   * terminates its worker, and piscina starts a replacement).
   */
  run(
    task: BatchTask,
    transferList: ArrayBuffer[],
    timeoutMs: number,
    done: (result: BatchResult | undefined, error?: unknown) => void,
  ): void {
    if (this.#closing) {
      done(undefined, new SockservError(ErrorCodes.SERVER_CLOSED, 'the worker pool is closed'));
      return;
    }
    this.#outstanding++;
    let timer: NodeJS.Timeout | undefined;
    // Always abortable: piscina gives an abortable task only to a worker with no other task, so a
    // handler that kills its worker takes down only its own batch.
    const controller = new AbortController();
    const signal = controller.signal;
    if (timeoutMs > 0) {
      timer = setTimeout(
        () => controller.abort(new SockservError(ErrorCodes.REQUEST_TIMEOUT, `handler ran past requestTimeout (${timeoutMs} ms)`)),
        timeoutMs,
      );
    }
    this.#piscina.run(task, { transferList, signal }).then(
      (result: BatchResult) => {
        clearTimeout(timer);
        this.#outstanding--;
        done(result);
        this.#notifySlotFree();
      },
      (error: unknown) => {
        clearTimeout(timer);
        this.#outstanding--;
        done(undefined, signal.aborted ? signal.reason : error);
        this.#notifySlotFree();
      },
    );
  }

  /** Calls `listener` whenever a slot frees up (dispatchers waiting to send a batch). */
  onSlotFree(listener: () => void): () => void {
    this.#slotListeners.add(listener);
    return () => this.#slotListeners.delete(listener);
  }

  /** Stops every worker. Idempotent. */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    await this.#piscina.destroy();
  }

  #notifySlotFree(): void {
    for (const listener of this.#slotListeners) listener();
  }
}
