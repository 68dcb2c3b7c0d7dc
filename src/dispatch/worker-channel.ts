// Owns the main thread's side of one worker channel: the request ring it writes, the reply ring it
// reads, and the slots of the requests it has handed to that worker. A slot holds a request from
// the moment it is written until its outcome comes back, so that when the worker dies every
// outstanding request can be judged by its state in shared memory: started ones failed, the rest
// sent again elsewhere — each request runs at most once. Sessions ride the same rings: each has a
// ChannelSessionEnd here, its messages are SESSION_* records, and the records that find the ring
// full wait in a backlog, in order, until the worker has read.

import { MessageChannel, type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import {
  BIG,
  CHANNEL_SIZES,
  type ChannelBuffers,
  type ChannelSizes,
  Ctl,
  KIND_MASK,
  Kind,
  SlotState,
  UNORDERED,
  URGENT,
  allocateChannel,
} from './channel-layout.js';
import { RingReader, RingWriter } from './ring.js';
import { type ChannelSessionEnd, encodeSessionMessage, readSessionMessage } from './session-port.js';

const EMPTY = new Uint8Array(0);

/** Longest wait for replies without looking at the ring, wake or no wake. */
const WAKE_CHECK_MS = 50;

/** Peers a worker remembers per channel; the oldest is forgotten first, mirrored here. */
export const PEER_CACHE = 4096;

/** What a channel knows of a request it carries. */
export interface SlotEntry<C> {
  conn: C;
  seq: number;
  request: Buffer;
  /** Failed by the watchdog while its async handler still awaited: its late outcome is dropped. */
  abandoned: boolean;
  /** The request's cost class key (its command), for learning what requests cost. */
  key: number;
  /** Predicted handler milliseconds when it was sent, and whether that made it urgent (cheap). */
  est: number;
  urgent: boolean;
  /** Already run once on a worker that died (idempotent handlers get one more run). */
  retried?: boolean;
}

/** An outcome read from the reply ring. */
export type ReplyKind = typeof Kind.REPLY | typeof Kind.NO_REPLY | typeof Kind.ERROR;

export class WorkerChannel<C> {
  /** Position of this channel among its dispatcher's channels. */
  readonly index: number;
  readonly buffers: ChannelBuffers;
  /** The worker's end of the port that carries frames too big for a ring record. */
  readonly workerPort: MessagePort;
  readonly #port: MessagePort;
  readonly #ctl: Int32Array;
  readonly #states: Uint8Array;
  readonly #startedAt: Float64Array;
  readonly #requests: RingWriter;
  readonly #replies: RingReader;
  readonly #sizes: ChannelSizes;
  readonly #entries: Array<SlotEntry<C> | undefined>;
  readonly #free: number[];
  /** Slots in use. */
  #used = 0;
  /** Requests written to this channel (compared with the worker's SYNC_DONE for the queue length). */
  #sent = 0;
  /** PEER records written; a connection introduced at n is remembered while #peers - n < PEER_CACHE. */
  #peers = 0;
  /** Predicted milliseconds of the non-urgent requests sent and not answered: the worker's queued heavy work. */
  work = 0;
  /** Non-urgent requests sent and not answered. */
  heavy = 0;
  #lastBusyMicros = 0;
  #lastSyncDone = 0;
  #waiting = false;
  /** Sessions carried by this channel, by number. */
  readonly #sessions = new Map<number, ChannelSessionEnd>();
  /** Session records that did not fit in the ring yet, oldest first. */
  #backlog: Array<{ kind: number; slot: number; id: number; payload: Uint8Array }> = [];
  #publishScheduled = false;
  #retryTimer: NodeJS.Timeout | undefined;
  /** The request ring was full at the last write: no more requests until the worker has read. */
  ringFull = false;
  /** Called when a full ring may have room again (the scheduler flushes). */
  onRoom: (() => void) | null = null;
  /** The worker is gone (died, stopped, or closing): nothing more is written. */
  dead = false;
  /** The slot the watchdog stopped the worker for, or -1. */
  killedFor = -1;

  constructor(index: number, sizes: ChannelSizes = CHANNEL_SIZES) {
    this.index = index;
    this.#sizes = sizes;
    this.buffers = allocateChannel(sizes);
    this.#ctl = new Int32Array(this.buffers.control);
    this.#states = new Uint8Array(this.buffers.states);
    this.#startedAt = new Float64Array(this.buffers.started);
    Atomics.store(this.#ctl, Ctl.RUNNING, -1);
    this.#requests = new RingWriter(this.buffers.request, this.#ctl, Ctl.REQ_WRITE, Ctl.REQ_READ);
    this.#replies = new RingReader(this.buffers.reply, this.#ctl, Ctl.REP_WRITE, Ctl.REP_READ);
    this.#entries = new Array(sizes.slots);
    this.#free = Array.from({ length: sizes.slots }, (_, i) => sizes.slots - 1 - i);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.workerPort = port2;
    port1.unref();
  }

  /** Requests written that the worker has not finished the synchronous part of. */
  get queued(): number {
    return this.#sent - Atomics.load(this.#ctl, Ctl.SYNC_DONE);
  }

  /** Requests outstanding (queued, running or awaiting). */
  get used(): number {
    return this.#used;
  }

  get hasFreeSlot(): boolean {
    return this.#used < this.#sizes.slots;
  }

  /** The worker thread running this channel, once its loop has started (0 before). */
  get threadId(): number {
    return Atomics.load(this.#ctl, Ctl.THREAD_ID);
  }

  /** Whether a connection introduced at PEER number `introduced` (0 = never) is still known to the worker. */
  knowsPeer(introduced: number): boolean {
    return introduced > 0 && this.#peers - introduced < PEER_CACHE;
  }

  /** Writes a PEER record; returns its number (to pass to knowsPeer later), or 0 if the ring is full. */
  introduce(conn: number, address: Buffer): number {
    if (!this.#requests.write(Kind.PEER, 0, conn, address)) {
      this.#markRingFull();
      return 0;
    }
    return ++this.#peers;
  }

  /**
   * Writes a request into the ring; false when the ring or the slots are full. `ordered`: the
   * worker runs this connection's requests one after another, async ones included.
   */
  send(entry: SlotEntry<C>, connId: number, ordered: boolean): boolean {
    if (this.#used === this.#sizes.slots) return false;
    const slot = this.#free.pop()!;
    const flags = (ordered ? 0 : UNORDERED) | (entry.urgent ? URGENT : 0);
    if (!this.#writeRecord(Kind.REQUEST | flags, slot, connId, entry.request)) {
      this.#free.push(slot);
      this.#markRingFull();
      return false;
    }
    Atomics.store(this.#states, slot, SlotState.QUEUED);
    this.#entries[slot] = entry;
    this.#used++;
    this.#sent++;
    if (!entry.urgent) {
      this.work += entry.est;
      this.heavy++;
    }
    return true;
  }

  /** Tells the worker that `slot`'s handler is no longer awaited (watchdog): its connection may go on. */
  abandon(slot: number): void {
    const entry = this.#entries[slot];
    if (!entry) return;
    entry.abandoned = true;
    // Through the backlog: it must reach the worker even when the ring is full right now. The
    // worker answers it with an empty outcome, which frees the slot here.
    this.#queueRecord(Kind.ABANDON, slot, 0, EMPTY);
  }

  /**
   * The ring had no room for a request: until the worker has read (a drain of its replies, or
   * 1 ms), the scheduler sends nothing more here, and `onRoom` is told when to try again.
   */
  #markRingFull(): void {
    if (this.ringFull) return;
    this.ringFull = true;
    setTimeout(() => {
      if (!this.ringFull) return;
      this.ringFull = false;
      this.onRoom?.();
    }, 1);
  }

  /** Makes written records visible and wakes the worker if it sleeps. */
  publish(): void {
    this.#publishScheduled = false;
    if (this.#backlog.length > 0) this.#writeBacklog();
    if (!this.#requests.publish()) return;
    if (Atomics.load(this.#ctl, Ctl.WORKER_SLEEPING) === 1) Atomics.notify(this.#ctl, Ctl.REQ_WRITE);
  }

  /** Asks the worker's loop to end. */
  close(): void {
    this.dead = true;
    Atomics.store(this.#ctl, Ctl.CLOSE, 1);
    Atomics.notify(this.#ctl, Ctl.REQ_WRITE);
    Atomics.notify(this.#ctl, Ctl.REP_WRITE); // a pending waitAsync of ours resolves and sees `dead`
    this.#port.close();
  }

  /**
   * Reads every published outcome, in the order the worker finished them: `deliver` gets the slot's
   * entry (freed already) and the outcome's bytes (a copy; an ERROR's bytes are its ErrorInfo JSON).
   */
  drain(deliver: (entry: SlotEntry<C>, kind: ReplyKind, bytes: Buffer | null, micros: number) => void): number {
    const reader = this.#replies;
    let count = 0;
    while (reader.next()) {
      const slot = reader.slot;
      const kind = (reader.kind & KIND_MASK) as ReplyKind;
      if (kind === (Kind.SESSION_DATA as number) || kind === (Kind.SESSION_CTRL as number)) {
        this.#receiveSession(reader, kind === (Kind.SESSION_DATA as number));
        count++;
        continue;
      }
      let bytes: Buffer | null = null;
      if (reader.kind & BIG) {
        const message = receiveMessageOnPort(this.#port);
        bytes = message ? Buffer.from(message.message as ArrayBuffer) : Buffer.alloc(0);
      } else if (kind !== Kind.NO_REPLY) {
        bytes = Buffer.allocUnsafe(reader.length);
        reader.bytes.copy(bytes, 0, reader.start, reader.start + reader.length);
      }
      const entry = this.#release(slot);
      count++;
      if (entry) deliver(entry, kind, bytes, reader.conn);
    }
    if (count > 0) {
      reader.release();
      this.ringFull = false; // the worker has read since
    }
    return count;
  }

  /** True if outcomes are waiting to be drained. */
  get hasReplies(): boolean {
    return this.#replies.poll();
  }

  /**
   * Calls `wake` once the worker publishes outcomes (at once if some are already there). One wait
   * at a time; Atomics.waitAsync answers synchronously ({ async: false }) when the value changed.
   */
  waitForReplies(wake: () => void): void {
    if (this.#waiting || this.dead) return;
    const ctl = this.#ctl;
    Atomics.store(ctl, Ctl.MAIN_SLEEPING, 1);
    if (this.#replies.poll()) {
      Atomics.store(ctl, Ctl.MAIN_SLEEPING, 0);
      queueMicrotask(wake);
      return;
    }
    // Bounded: a notify that went astray costs at most WAKE_CHECK_MS, never a stalled channel.
    const waited = Atomics.waitAsync(ctl, Ctl.REP_WRITE, this.#replies.seenEnd, WAKE_CHECK_MS);
    if (!waited.async) {
      Atomics.store(ctl, Ctl.MAIN_SLEEPING, 0);
      queueMicrotask(wake);
      return;
    }
    this.#waiting = true;
    void waited.value.then(() => {
      this.#waiting = false;
      Atomics.store(ctl, Ctl.MAIN_SLEEPING, 0);
      if (!this.dead) wake();
    });
  }

  // ---- sessions ------------------------------------------------------------------------

  /** Sessions on this channel now. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Starts session `id` on the worker; its messages go to and come from `end`. */
  openSession(end: ChannelSessionEnd, clientAddress: readonly [string, number]): void {
    this.#sessions.set(end.id, end);
    this.#queueRecord(Kind.SESSION_OPEN, 0, end.id, Buffer.from(JSON.stringify(clientAddress)));
  }

  sendSession(id: number, message: { t: string; b?: ArrayBuffer }): void {
    if (this.dead) return;
    const { data, payload } = encodeSessionMessage(message);
    this.#queueRecord(data ? Kind.SESSION_DATA : Kind.SESSION_CTRL, 0, id, payload);
  }

  /** The main thread's end of session `id` closed: its later messages are dropped. */
  forgetSession(id: number): void {
    this.#sessions.delete(id);
  }

  /** After the worker died: every session it carried (their handlers are gone). */
  takeSessions(): ChannelSessionEnd[] {
    const ends = [...this.#sessions.values()];
    this.#sessions.clear();
    this.#backlog = [];
    clearTimeout(this.#retryTimer);
    return ends;
  }

  /** Writes a record that must not be lost (session records, ABANDON), or queues it in order until the ring has room. */
  #queueRecord(kind: number, slot: number, id: number, payload: Uint8Array): void {
    if (this.#backlog.length > 0 || !this.#writeRecord(kind, slot, id, payload)) this.#backlog.push({ kind, slot, id, payload });
    if (!this.#publishScheduled) {
      // Once per loop turn, like requests: a session's reads of one turn wake its worker once.
      this.#publishScheduled = true;
      setImmediate(() => this.publish());
    }
  }

  /** One record; a payload bigger than a record takes the slower path: transferred, announced in order by a BIG record. */
  #writeRecord(kind: number, slot: number, id: number, payload: Uint8Array): boolean {
    if (payload.byteLength <= this.#sizes.maxRecordBytes) return this.#requests.write(kind, slot, id, payload);
    if (!this.#requests.write(kind | BIG, slot, id, null)) return false;
    const bytes = transferable(payload);
    this.#port.postMessage(bytes, [bytes]);
    return true;
  }

  #writeBacklog(): void {
    let written = 0;
    for (const record of this.#backlog) {
      if (!this.#writeRecord(record.kind, record.slot, record.id, record.payload)) break;
      written++;
    }
    this.#backlog.splice(0, written);
    // The worker frees room as it reads, without telling: look again shortly.
    if (this.#backlog.length > 0 && this.#retryTimer === undefined && !this.dead) {
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = undefined;
        this.publish();
      }, 1);
    }
  }

  #receiveSession(reader: RingReader, data: boolean): void {
    const message = readSessionMessage(reader, data, this.#port);
    const end = this.#sessions.get(reader.slot);
    if (!end) return;
    if ((message as { t: string }).t === 'end') this.#sessions.delete(end.id);
    end.receive(message);
  }

  /** Handler CPU milliseconds and synchronous completions since the last call (cost measurement). */
  progress(): { busyMs: number; done: number } {
    const busy = Atomics.load(this.#ctl, Ctl.BUSY_MICROS);
    const done = Atomics.load(this.#ctl, Ctl.SYNC_DONE);
    const result = { busyMs: ((busy - this.#lastBusyMicros) | 0) / 1000, done: done - this.#lastSyncDone };
    this.#lastBusyMicros = busy;
    this.#lastSyncDone = done;
    return result;
  }

  /** Started requests whose handler has run longer than `limitMs`: the one on the thread now, and async ones. */
  overdue(now: number, limitMs: number): { running: number; awaiting: number[] } {
    const running = Atomics.load(this.#ctl, Ctl.RUNNING);
    let stuck = -1;
    const awaiting: number[] = [];
    for (let slot = 0; slot < this.#entries.length; slot++) {
      const entry = this.#entries[slot];
      if (!entry || entry.abandoned || Atomics.load(this.#states, slot) !== SlotState.STARTED) continue;
      if (now - this.#startedAt[slot]! <= limitMs) continue;
      if (slot === running) stuck = slot;
      else awaiting.push(slot);
    }
    return { running: stuck, awaiting };
  }

  entry(slot: number): SlotEntry<C> | undefined {
    return this.#entries[slot];
  }

  /**
   * After the worker died: every outstanding request, split by whether its handler had started.
   * Call drain() first, so requests that finished are delivered, not judged.
   */
  takeOutstanding(): { started: Array<[number, SlotEntry<C>]>; queued: Array<SlotEntry<C>> } {
    const started: Array<[number, SlotEntry<C>]> = [];
    const queued: Array<SlotEntry<C>> = [];
    for (let slot = 0; slot < this.#entries.length; slot++) {
      const entry = this.#entries[slot];
      if (!entry) continue;
      this.#release(slot);
      if (Atomics.load(this.#states, slot) === SlotState.STARTED) started.push([slot, entry]);
      else queued.push(entry);
    }
    return { started, queued };
  }

  #release(slot: number): SlotEntry<C> | undefined {
    const entry = this.#entries[slot];
    if (!entry) return undefined;
    this.#entries[slot] = undefined;
    this.#free.push(slot);
    this.#used--;
    if (!entry.urgent) {
      this.work = --this.heavy === 0 ? 0 : this.work - entry.est;
    }
    return entry;
  }
}

/** The bytes as an ArrayBuffer of their own (a pooled Buffer shares its ArrayBuffer and cannot be transferred). */
function transferable(bytes: Uint8Array): ArrayBuffer {
  const copy = new ArrayBuffer(bytes.length);
  new Uint8Array(copy).set(bytes);
  return copy;
}
