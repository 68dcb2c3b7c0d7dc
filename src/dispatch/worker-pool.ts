// Owns the worker threads: a fixed-size piscina pool (minThreads = maxThreads, so no thread is
// started or reaped under load). piscina manages the threads — start, replacement after a death,
// resource limits, nice — and carries one long-lived task per worker and dispatcher: a channel
// loop (worker-channel.ts). Requests and sessions never travel as piscina tasks; they stream
// through the channels' shared memory. One pool may serve several servers; each server's
// dispatcher opens its own channel on every worker. Its threads are reniced (workerNice) from the
// moment piscina starts them, not only once they run: a reload boots a whole new pool while the
// main thread serves every connection, and a booting thread must not take the CPU from it.

import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { ResourceLimits, Transferable } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { HandlerKind } from '../handler.js';
import { type ErrorInfo, ErrorCodes, SockservError, fromErrorInfo } from '../errors.js';
import type { HandlerRef } from '../handler-module.js';
import { type Logger, stderrLogger } from '../logger.js';
import { DEFAULTS } from '../options.js';
import { workerEntryUrl } from './worker-entry.js';

type LoadBalancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer']>;

/** Channel loops a worker may hold at once (one per server sharing the pool). */
const TASKS_PER_WORKER = 1024;
/** close(): how long running tasks may take to end, and booting workers to finish booting, before threads are stopped. */
const CLOSE_TIMEOUT_MS = 1000;
const BOOT_WAIT_MS = 10_000;
const BOOT_POLL_MS = 10;

/** Where a channel task may go: not on `avoid`; `placed` is told the thread chosen. */
interface Placement {
  avoid: ReadonlySet<number>;
  placed: (threadId: number) => void;
}

/** Options of a WorkerPool made by hand (to share one between servers with the `pool` option). */
export interface WorkerPoolOptions {
  /** Worker threads. Default 1 (a Threading server passes its `workers` option, which defaults to the available parallelism). */
  workers?: number;
  /**
   * Threads kept booted beside `workers`, with the handler loaded, running nothing: when a worker
   * dies, its channel moves onto a spare at once instead of waiting for a new thread to boot (which
   * takes hundreds of ms on a busy machine), and piscina boots the next spare in the background.
   * Default DEFAULTS.spareWorkers (1); 0 = none.
   */
  spareWorkers?: number;
  /** Per-worker V8 heap limits: a handler that exhausts its heap kills only its worker. */
  resourceLimits?: ResourceLimits;
  /** Shorthand for resourceLimits.maxOldGenerationSizeMb. */
  workerHeapMb?: number;
  /**
   * Nice value of the worker threads (Linux; ignored elsewhere). Default: DEFAULTS.workerNice (10),
   * the server option's: under CPU contention the main thread — the multiplexer every connection
   * waits on — runs first, so a saturated pool cannot stall accepts, reads and writes. 0 keeps
   * workers at normal priority.
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
  readonly #piscina: Piscina;
  readonly #logger: Logger;
  /** Threads in all: the workers and the spares. */
  readonly #threads: number;
  /** Channel loops per worker thread id, so each new channel goes to the worker with the fewest. */
  readonly #channelsOn = new Map<number, number>();
  /** Workers that finished booting (piscina's 'workerCreate'); the others in piscina.threads are still loading. */
  readonly #ready = new Set<number>();
  #closing = false;

  constructor(options: WorkerPoolOptions = {}) {
    const workers = options.workers ?? 1;
    this.workers = workers;
    const threads = workers + (options.spareWorkers ?? DEFAULTS.spareWorkers);
    this.#threads = threads;
    this.#logger = options.logger ?? stderrLogger;
    const nice = options.workerNice ?? DEFAULTS.workerNice;
    const threadsBefore = nice > 0 ? taskIds() : null;
    this.#piscina = new Piscina({
      filename: workerEntryUrl().href,
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: TASKS_PER_WORKER,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      // Worker event loops must keep turning between tasks: channel loops and sessions await.
      atomics: 'async',
      // close() waits this long for tasks still running (a handler stuck in a loop) before it stops the threads.
      closeTimeout: CLOSE_TIMEOUT_MS,
      loadBalancer: this.#balance,
      resourceLimits: { maxOldGenerationSizeMb: options.workerHeapMb, ...options.resourceLimits },
      workerData: { nice },
    });
    if (threadsBefore !== null) reniceNewThreads(threadsBefore, nice);
    // Without a listener, an error raised in a worker outside any task would crash the process.
    this.#piscina.on('error', (err: unknown) => {
      if (this.#closing) this.#logger.debug({ err }, 'worker pool closing');
      else this.#logger.error({ err, code: ErrorCodes.WORKER_DIED }, 'worker error outside a task');
    });
    this.#piscina.on('workerCreate', (worker: { id: number }) => {
      this.#ready.add(worker.id);
    });
    this.#piscina.on('workerDestroy', (worker: { id: number }) => {
      this.#ready.delete(worker.id);
      if (!this.#closing) this.#logger.warn({ code: ErrorCodes.WORKER_DIED }, 'worker died; piscina starts a replacement');
    });
  }

  /** Loads the handler in every worker and says what it is; rejects with ERR_HANDLER_LOAD / ERR_HANDLER_INVALID. */
  async preload(ref: HandlerRef): Promise<{ kind: HandlerKind; idempotent: boolean }> {
    const outcomes: Array<{ kind: HandlerKind; idempotent: boolean } | { error: ErrorInfo }> = await Promise.all(
      Array.from({ length: this.#threads }, () => this.#piscina.run(ref, { name: 'load' })),
    );
    for (const outcome of outcomes) if ('error' in outcome) throw fromErrorInfo(outcome.error, ErrorCodes.HANDLER_LOAD);
    return outcomes[0] as { kind: HandlerKind; idempotent: boolean };
  }

  /**
   * Starts a channel loop on the worker holding the fewest channels among those not in `avoid`
   * (the threads of the server's other channels) — waiting, if every ready worker is to be avoided,
   * for one that is not (a replacement still booting). `placed` hears the thread chosen. Resolves
   * with the loop's outcome when it ends, rejects when its worker dies (or was stopped).
   */
  runChannel(task: object, transferList: Transferable[], avoid: ReadonlySet<number>, placed: (threadId: number) => void): Promise<unknown> {
    if (this.#closing) return Promise.reject(new SockservError(ErrorCodes.SERVER_CLOSED, 'the worker pool is closed'));
    // Read by the balancer only: symbol-keyed properties are not cloned to the worker.
    const placement: Placement = { avoid, placed };
    (task as Record<symbol, unknown>)[Piscina.queueOptionsSymbol] = placement;
    return this.#piscina.run(task, { name: 'channel', transferList: transferList as never });
  }

  /** A channel loop on thread `threadId` ended. */
  channelEnded(threadId: number): void {
    const count = this.#channelsOn.get(threadId);
    if (count !== undefined) this.#channelsOn.set(threadId, Math.max(0, count - 1));
  }

  /**
   * Stops worker `threadId` at once (a handler stuck past requestTimeout). Its tasks reject and
   * piscina starts a replacement. False if no such worker is running.
   */
  terminate(threadId: number): boolean {
    const worker = this.#piscina.threads.find((thread) => thread.threadId === threadId);
    if (!worker) return false;
    void worker.terminate();
    return true;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /**
   * Stops every worker. Idempotent. A worker still booting (a replacement loading its modules) is
   * waited for first, up to BOOT_WAIT_MS: terminating a thread inside module loading can abort the
   * process. piscina.close() then starts no replacement, waits for running tasks up to
   * CLOSE_TIMEOUT_MS, and stops the threads.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    const deadline = performance.now() + BOOT_WAIT_MS;
    // Ends when no worker is booting, or at the deadline.
    while (this.#piscina.threads.some((thread) => !this.#ready.has(thread.threadId)) && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, BOOT_POLL_MS));
    }
    await this.#piscina.close({ force: true });
  }

  /**
   * piscina's balancer, extended: a channel goes to the live worker with the fewest channels (so
   * a server's channels spread one per worker), everything else to the least busy worker. No task
   * is abortable, so every worker takes every kind of task.
   */
  readonly #balance: LoadBalancer = (task, workers) => {
    let best: (typeof workers)[number] | null = null;
    if (task.name === 'channel') {
      const placement = (task as unknown as Record<symbol, Placement | null>)[Piscina.queueOptionsSymbol] ?? null;
      const live = new Set<number>();
      let fewest = Infinity;
      for (const worker of workers) {
        if (worker.terminating || worker.destroyed) continue;
        live.add(worker.id);
        if (placement?.avoid.has(worker.id)) continue;
        const channels = this.#channelsOn.get(worker.id) ?? 0;
        if (channels < fewest) {
          fewest = channels;
          best = worker;
        }
      }
      for (const id of this.#channelsOn.keys()) if (!live.has(id)) this.#channelsOn.delete(id); // dead workers
      if (best) {
        this.#channelsOn.set(best.id, fewest + 1);
        placement?.placed(best.id);
      }
      return best; // null: the task waits in piscina's queue until a worker becomes ready

    }
    let least = Infinity;
    for (const worker of workers) {
      if (worker.terminating || worker.destroyed) continue;
      if (worker.currentUsage < least) {
        least = worker.currentUsage;
        best = worker;
      }
    }
    return best;
  };
}

/** The ids of this process's threads (Linux), or null elsewhere. */
function taskIds(): Set<number> | null {
  if (process.platform !== 'linux') return null;
  try {
    return new Set(readdirSync('/proc/self/task').map(Number));
  } catch {
    return null;
  }
}

/**
 * Renices the threads started since `before` — the pool's workers, which piscina starts in its
 * constructor — at once, so their boot (Node's bootstrap, module loading: the costly part of a
 * reload) already yields to the main thread. Each worker renices itself too once it runs
 * (handler-host.ts): that covers replacements started later. Best effort.
 */
function reniceNewThreads(before: Set<number> | null, nice: number): void {
  if (before === null) return;
  for (const tid of taskIds() ?? []) {
    if (before.has(tid)) continue;
    try {
      setPriority(tid, nice);
    } catch {
      // not permitted, or gone: the worker renices itself when it runs
    }
  }
}
