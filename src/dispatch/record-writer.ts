// Owns the single outbound path of a channel, main thread → worker: every record (requests, PEER,
// ABANDON, session records) is written here, a payload bigger than a ring record takes the
// transfer path (a BIG record announcing the next port message), and publish() makes what was
// written visible and rings the worker's doorbell.
//
// Invariant: records reach the worker in the order they were issued. A record that must not be
// lost (ABANDON, session records) waits in the backlog when the ring is full; while the backlog
// holds anything, tryWrite() refuses (the caller keeps its request and tries later), so a request
// never overtakes an ABANDON or a session's bytes. The backlog is retried every RETRY_MS while it
// holds records; close() ends the retries.

import type { MessagePort } from 'node:worker_threads';
import { BIG } from './channel-protocol.js';
import { TO_WORKER, ring } from './doorbell.js';
import { Fifo } from './fifo.js';
import type { RingWriter } from './ring.js';

/** How soon a backlog that did not fit is tried again: the worker frees room as it reads, without telling. */
const RETRY_MS = 1;

interface Pending {
  kind: number;
  slot: number;
  conn: number;
  payload: Uint8Array;
}

export class RecordWriter {
  readonly #ring: RingWriter;
  readonly #ctl: Int32Array;
  readonly #port: MessagePort;
  readonly #maxRecordBytes: number;
  readonly #backlog = new Fifo<Pending>();
  #publishScheduled = false;
  #retryTimer: NodeJS.Timeout | undefined;
  #fullTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /**
   * A tryWrite found no room: until the worker has read (a drain of its replies, or RETRY_MS), the
   * scheduler sends nothing here — it would only find the ring full again — and `onRoom` says when
   * to try again.
   */
  full = false;
  onRoom: (() => void) | null = null;

  constructor(ring: RingWriter, ctl: Int32Array, port: MessagePort, maxRecordBytes: number) {
    this.#ring = ring;
    this.#ctl = ctl;
    this.#port = port;
    this.#maxRecordBytes = maxRecordBytes;
  }

  /** Records wait in the backlog. */
  get backlogged(): boolean {
    return !this.#backlog.empty;
  }

  /** Writes a record now; false (nothing written) when the ring has no room or older records wait. */
  tryWrite(kind: number, slot: number, conn: number, payload: Uint8Array | null): boolean {
    if (this.#closed) return false;
    if (!this.#backlog.empty || !this.#write(kind, slot, conn, payload)) {
      this.#markFull();
      return false;
    }
    return true;
  }

  #markFull(): void {
    if (this.full) return;
    this.full = true;
    // Fires once; cleared by clearFull() or close().
    this.#fullTimer = setTimeout(() => {
      this.#fullTimer = undefined;
      this.clearFull();
    }, RETRY_MS);
  }

  /** Writes a record now, or after the records already waiting: it is never dropped (until close). */
  mustWrite(kind: number, slot: number, conn: number, payload: Uint8Array): void {
    if (this.#closed) return;
    if (!this.#backlog.empty || !this.#write(kind, slot, conn, payload)) this.#backlog.push({ kind, slot, conn, payload });
    if (!this.#publishScheduled) {
      // Once per loop turn, like requests: a session's reads of one turn wake its worker once.
      this.#publishScheduled = true;
      setImmediate(() => this.publish());
    }
  }

  /** The worker has read since the ring was found full. */
  clearFull(): void {
    if (!this.full) return;
    this.full = false;
    clearTimeout(this.#fullTimer);
    this.#fullTimer = undefined;
    if (!this.#closed) this.onRoom?.();
  }

  /** Writes what the backlog holds, makes every record visible, and wakes the worker if it sleeps. */
  publish(): void {
    this.#publishScheduled = false;
    if (this.#closed) return;
    if (!this.#backlog.empty) this.#writeBacklog();
    if (this.#ring.publish()) ring(this.#ctl, TO_WORKER);
  }

  /** Nothing more is written; the backlog is dropped and its retries end. */
  close(): void {
    this.#closed = true;
    this.#backlog.drainAll();
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    clearTimeout(this.#fullTimer);
    this.#fullTimer = undefined;
  }

  /** One record; a payload bigger than a record is transferred, announced in order by a BIG record. */
  #write(kind: number, slot: number, conn: number, payload: Uint8Array | null): boolean {
    if (payload === null || payload.byteLength <= this.#maxRecordBytes) return this.#ring.write(kind, slot, conn, payload);
    if (!this.#ring.write(kind | BIG, slot, conn, null)) return false;
    const bytes = transferable(payload);
    this.#port.postMessage(bytes, [bytes]);
    return true;
  }

  #writeBacklog(): void {
    for (let next = this.#backlog.peek(); next !== undefined; next = this.#backlog.peek()) {
      if (!this.#write(next.kind, next.slot, next.conn, next.payload)) break;
      this.#backlog.shift();
    }
    // Ends when the backlog is written, or at close().
    if (!this.#backlog.empty && this.#retryTimer === undefined) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.publish();
      }, RETRY_MS);
    }
  }
}

/** The bytes as an ArrayBuffer of their own (a pooled Buffer shares its ArrayBuffer and cannot be transferred). */
function transferable(bytes: Uint8Array): ArrayBuffer {
  const copy = new ArrayBuffer(bytes.length);
  new Uint8Array(copy).set(bytes);
  return copy;
}
