// Owns pooled dispatch (ThreadingTCPServer): requests framed in one turn of the event loop are
// queued, then packed into batches — across connections — and each batch is one pool task.
//   - Batch size follows the measured handler cost: about `targetBatchMs` of work per task, so
//     trivial requests travel hundreds to a task and heavy ones a few at a time.
//   - What is ready is spread over the idle workers rather than piled on one; while every worker
//     is busy, requests accumulate until a batch returns or a full batch is ready.
//   - The queue is bounded (`maxQueuedRequests`): when full, connections stop reading until a
//     batch returns.
//   - Async requests still awaiting when their batch returns report later (late-replies.ts), so
//     a slow or stuck async handler holds neither its batch nor its worker.
//   - A batch whose worker died — or that ran past requestTimeout, which stops its worker — is
//     retried one request per task, so only the request that kills or stalls its worker fails
//     (ERR_WORKER_DIED, ERR_REQUEST_TIMEOUT); the others run again (at-least-once on a crash).

import { ErrorCodes, SockservError, fromErrorInfo } from '../errors.js';
import type { MessagePort } from 'node:worker_threads';
import type { ClientAddress, HandlerKind, ServerInfo } from '../handler.js';
import type { HandlerRef } from '../handler-module.js';
import type { Logger } from '../logger.js';
import type { ResolvedOptions } from '../options.js';
import { InlineLane } from './inline-lane.js';
import { BatchBuilder, type BatchResult, FAILED, LATE, NO_REPLY } from './batch.js';
import { LateReplies } from './late-replies.js';
import type { Dispatcher, DispatcherStats, RequestSink } from './dispatcher.js';
import type { WorkerPool } from './worker-pool.js';

interface QueuedRequest {
  sink: RequestSink;
  seq: number;
  request: Buffer;
}

type BatchLimits = Pick<
  ResolvedOptions,
  | 'maxQueuedRequests'
  | 'maxBatchRequests'
  | 'maxBatchBytes'
  | 'targetBatchMs'
  | 'readHighWaterMark'
  | 'maxFrameBytes'
  | 'requestTimeout'
>;

/** Weight of the newest batch in the handler-cost average. */
const COST_SMOOTHING = 0.2;

export class PoolDispatcher implements Dispatcher {
  readonly #pool: WorkerPool;
  readonly #ownsPool: boolean;
  readonly #handler: HandlerRef;
  readonly #limits: BatchLimits;
  #server: ServerInfo | undefined;
  #kind: HandlerKind = 'request';
  #sessions = 0;
  /** Requests waiting for a slot, oldest first from #head. */
  #queue: QueuedRequest[] = [];
  #head = 0;
  /** Requests of dead batches, each to be retried alone. */
  #retry: QueuedRequest[] = [];
  #waiters = new Set<RequestSink>();
  #flushScheduled = false;
  #running = 0;
  /** Smoothed worker milliseconds per request; undefined until the first batch returns. */
  #costMs: number | undefined;
  readonly #unsubscribe: () => void;
  readonly #flush = () => this.#flushQueue();
  /** Async requests still awaiting after their batch returned. */
  readonly #late: LateReplies;

  /** Runs cheap requests on the main thread when inlineBelowMicros is set; null otherwise. */
  readonly #lane: InlineLane | null;

  constructor(pool: WorkerPool, ownsPool: boolean, handler: HandlerRef, options: ResolvedOptions, logger: Logger) {
    this.#pool = pool;
    this.#ownsPool = ownsPool;
    this.#handler = handler;
    this.#limits = options;
    this.#lane = options.inlineBelowMicros > 0 ? new InlineLane(handler, options, logger) : null;
    this.#late = new LateReplies(options.requestTimeout);
    this.#unsubscribe = pool.onSlotFree(this.#flush);
  }

  get handlerKind(): HandlerKind {
    return this.#kind;
  }

  async start(server: ServerInfo): Promise<void> {
    this.#server = server;
    this.#kind = await this.#pool.preload(this.#handler);
    await this.#lane?.start(server, this.#kind);
  }

  startSession(port: MessagePort, clientAddress: ClientAddress): Promise<void> {
    const task = {
      handler: this.#handler,
      server: this.#server!,
      clientAddress,
      port,
      limits: { readHighWaterMark: this.#limits.readHighWaterMark, maxFrameBytes: this.#limits.maxFrameBytes },
    };
    this.#sessions++;
    return this.#pool.runSession(task, port).finally(() => {
      this.#sessions--;
    });
  }

  get #queued(): number {
    return this.#queue.length - this.#head + this.#retry.length;
  }

  hasCapacity(): boolean {
    return this.#queued < this.#limits.maxQueuedRequests;
  }

  waitForCapacity(sink: RequestSink): void {
    this.#waiters.add(sink);
  }

  submit(sink: RequestSink, seq: number, request: Buffer): void {
    if (this.#lane?.active) {
      this.#lane.submit(sink, seq, request);
      return;
    }
    this.#queue.push({ sink, seq, request });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // Once per loop turn: everything framed in this poll phase goes out together.
      setImmediate(this.#flush);
    }
  }

  stats(): DispatcherStats {
    return {
      queued: this.#queued,
      running: this.#running + this.#sessions + this.#late.pending,
      workers: this.#pool.workers,
      utilization: this.#pool.utilization,
    };
  }

  async close(): Promise<void> {
    this.#unsubscribe();
    this.#late.close();
    if (this.#ownsPool) await this.#pool.close();
  }

  #flushQueue(): void {
    this.#flushScheduled = false;
    while (this.#retry.length > 0 && this.#pool.freeSlots > 0) {
      this.#send([this.#retry.shift()!], true);
    }
    while (this.#head < this.#queue.length && this.#pool.freeSlots > 0) {
      const size = this.#nextBatchSize();
      // Every worker is busy: a batch sent now would only wait in a worker's queue. Hold the
      // requests until a batch returns (which flushes again) unless a full batch is ready —
      // group commit: small batches when idle (latency), large ones under load (throughput).
      if (this.#pool.idleWorkers === 0 && this.#queue.length - this.#head < size) break;
      const batch: QueuedRequest[] = [];
      let bytes = 0;
      while (batch.length < size && this.#head < this.#queue.length) {
        const next = this.#queue[this.#head]!;
        if (batch.length > 0 && bytes + next.request.length > this.#limits.maxBatchBytes) break;
        this.#queue[this.#head++] = undefined as unknown as QueuedRequest;
        if (next.sink.closed) continue;
        batch.push(next);
        bytes += next.request.length;
      }
      if (batch.length > 0) this.#send(batch, false);
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    if (this.#waiters.size > 0 && this.hasCapacity()) this.#wakeWaiters();
  }

  #nextBatchSize(): number {
    const { targetBatchMs, maxBatchRequests } = this.#limits;
    const cost = this.#costMs ?? targetBatchMs / 16;
    const byCost = cost > 0 ? Math.floor(targetBatchMs / cost) : maxBatchRequests;
    const idle = this.#pool.idleWorkers;
    const queued = this.#queue.length - this.#head;
    const spread = idle > 0 ? Math.ceil(queued / idle) : maxBatchRequests;
    return Math.max(1, Math.min(byCost, spread, maxBatchRequests));
  }

  #send(batch: QueuedRequest[], isolated: boolean): void {
    const builder = new BatchBuilder();
    for (const entry of batch) builder.add(entry.request, entry.sink.clientAddress);
    const batchId = this.#late.nextBatchId();
    const { task, transferList } = builder.build(this.#handler, this.#server!, { channel: this.#late.channel, batch: batchId });
    this.#running += batch.length;
    // Requests in a batch run one after another: allow each its requestTimeout on top of the
    // expected cost of those before it.
    const { requestTimeout } = this.#limits;
    const deadline = requestTimeout > 0 ? requestTimeout + Math.ceil((this.#costMs ?? 0) * batch.length) : 0;
    this.#pool.run(task, transferList, deadline, (result, error) => {
      this.#running -= batch.length;
      if (result) this.#deliver(batch, batchId, result);
      else {
        this.#late.forget(batchId);
        this.#failed(batch, isolated, error);
      }
    });
  }

  #deliver(batch: QueuedRequest[], batchId: number, result: BatchResult): void {
    this.#pool.recordBusy(result.elapsedMs);
    const perRequest = result.elapsedMs / batch.length;
    this.#lane?.observePoolCost(perRequest);
    this.#costMs = this.#costMs === undefined ? perRequest : this.#costMs + COST_SMOOTHING * (perRequest - this.#costMs);
    const { data, ends, errors } = result;
    let start = 0;
    let nextError = 0;
    let late: Map<number, { sink: RequestSink; seq: number }> | null = null;
    for (let i = 0; i < batch.length; i++) {
      const { sink, seq } = batch[i]!;
      const end = ends[i]!;
      if (end === LATE) {
        (late ??= new Map()).set(i, { sink, seq });
      } else if (end === FAILED) {
        const info = errors[nextError++]!;
        if (!sink.closed) sink.complete(seq, null, fromErrorInfo(info, ErrorCodes.HANDLER_FAILED));
      } else if (end === NO_REPLY) {
        if (!sink.closed) sink.complete(seq, null);
      } else {
        if (!sink.closed) sink.complete(seq, Buffer.from(data.buffer, data.byteOffset + start, end - start));
        start = end;
      }
    }
    if (late) this.#late.expect(batchId, late);
    else this.#late.returned(batchId);
  }

  #failed(batch: QueuedRequest[], isolated: boolean, error: unknown): void {
    const code = (error as { code?: unknown })?.code;
    if (code === ErrorCodes.HANDLER_LOAD || code === ErrorCodes.HANDLER_INVALID || code === ErrorCodes.SERVER_CLOSED) {
      for (const { sink, seq } of batch) if (!sink.closed) sink.complete(seq, null, error as SockservError);
      return;
    }
    if (!isolated) {
      for (const entry of batch) if (!entry.sink.closed) this.#retry.push(entry);
      return; // the slot-free notification that follows flushes the retries
    }
    const failure =
      code === ErrorCodes.REQUEST_TIMEOUT
        ? (error as SockservError)
        : new SockservError(ErrorCodes.WORKER_DIED, `the worker running this request died: ${(error as Error)?.message ?? String(error)}`, {
            cause: error,
          });
    for (const { sink, seq } of batch) if (!sink.closed) sink.complete(seq, null, failure);
  }

  #wakeWaiters(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const sink of waiters) {
      if (!sink.closed) sink.pump();
      if (!this.hasCapacity()) {
        // Still full: the rest keep waiting.
        for (const rest of waiters.slice(waiters.indexOf(sink) + 1)) this.#waiters.add(rest);
        return;
      }
    }
  }
}
