// Owns the outcomes of async requests that were still awaiting when their batch returned. The
// worker reports each later on a BroadcastChannel (one per dispatcher); this matches them to their
// connection. With requestTimeout, a late request that never reports — a stuck handler, or a
// worker that died meanwhile — fails with ERR_REQUEST_TIMEOUT instead of holding its
// connection's in-flight slot for ever.

import { BroadcastChannel } from 'node:worker_threads';
import { ErrorCodes, SockservError, fromErrorInfo } from '../errors.js';
import type { LateReply } from './batch.js';
import type { RequestSink } from './dispatcher.js';

interface Pending {
  sink: RequestSink;
  seq: number;
}

interface LateBatch {
  /** By index in the batch; removed once completed. */
  pending: Map<number, Pending>;
  timer: NodeJS.Timeout | undefined;
}

/** Replies that overtake their batch's result are held this long at most, by count. */
const MAX_EARLY = 10_000;

let channels = 0;

export class LateReplies {
  /** The BroadcastChannel name workers report on. */
  readonly channel = `sockserv-late-${process.pid}-${++channels}`;
  readonly #port = new BroadcastChannel(this.channel);
  readonly #requestTimeout: number;
  readonly #batches = new Map<number, LateBatch>();
  /** Reports that arrived before their batch's result (the two travel on different channels). */
  readonly #early = new Map<number, LateReply[]>();
  /** Batches sent whose result has not come back: only their reports may arrive early. */
  readonly #outstanding = new Set<number>();
  #earlyCount = 0;
  #nextBatch = 0;

  constructor(requestTimeout: number) {
    this.#requestTimeout = requestTimeout;
    this.#port.unref();
    this.#port.onmessage = (event) => this.#receive((event as { data: LateReply }).data);
  }

  /** Requests whose outcome is still to come. */
  get pending(): number {
    let count = 0;
    for (const batch of this.#batches.values()) count += batch.pending.size;
    return count;
  }

  /** A fresh id for the next batch sent. */
  nextBatchId(): number {
    const id = this.#nextBatch++;
    this.#outstanding.add(id);
    return id;
  }

  /** The batch `id` returned with every outcome in it. */
  returned(id: number): void {
    this.#outstanding.delete(id);
  }

  /** The batch `id` returned with these requests still awaiting. */
  expect(id: number, pending: Map<number, Pending>): void {
    this.#outstanding.delete(id);
    const batch: LateBatch = { pending, timer: undefined };
    this.#batches.set(id, batch);
    const early = this.#early.get(id);
    if (early) {
      this.#early.delete(id);
      this.#earlyCount -= early.length;
      for (const report of early) this.#receive(report);
    }
    if (this.#batches.has(id) && this.#requestTimeout > 0) {
      batch.timer = setTimeout(() => this.#expire(id), this.#requestTimeout);
      batch.timer.unref();
    }
  }

  /** The batch `id` failed as a whole: nothing more will come for it. */
  forget(id: number): void {
    this.#outstanding.delete(id);
    const early = this.#early.get(id);
    if (early) this.#earlyCount -= early.length;
    this.#early.delete(id);
  }

  close(): void {
    for (const batch of this.#batches.values()) clearTimeout(batch.timer);
    this.#batches.clear();
    this.#port.close();
  }

  #receive(report: LateReply): void {
    const batch = this.#batches.get(report.batch);
    if (!batch) {
      // A report for a batch already timed out or failed is dropped; only one that overtook its
      // batch's result is kept for it.
      if (this.#outstanding.has(report.batch) && this.#earlyCount < MAX_EARLY) {
        const list = this.#early.get(report.batch) ?? [];
        list.push(report);
        this.#early.set(report.batch, list);
        this.#earlyCount++;
      }
      return;
    }
    const entry = batch.pending.get(report.index);
    if (!entry) return;
    batch.pending.delete(report.index);
    if (batch.pending.size === 0) {
      clearTimeout(batch.timer);
      this.#batches.delete(report.batch);
    }
    if (entry.sink.closed) return;
    if (report.error) entry.sink.complete(entry.seq, null, fromErrorInfo(report.error, ErrorCodes.HANDLER_FAILED));
    else entry.sink.complete(entry.seq, report.reply === null ? null : Buffer.from(report.reply.buffer, report.reply.byteOffset, report.reply.byteLength));
  }

  #expire(id: number): void {
    const batch = this.#batches.get(id);
    if (!batch) return;
    this.#batches.delete(id);
    const error = new SockservError(
      ErrorCodes.REQUEST_TIMEOUT,
      `async handler did not settle within requestTimeout (${this.#requestTimeout} ms)`,
    );
    for (const { sink, seq } of batch.pending.values()) if (!sink.closed) sink.complete(seq, null, error);
  }
}
