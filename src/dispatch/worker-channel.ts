// Owns the main thread's end of one worker channel: it composes the reply ring it reads, the
// outbound path it writes (record-writer.ts), the slots of the requests it carries
// (slot-table.ts), the wake handshake (doorbell.ts) and the sessions it carries — and its life:
//
//   opening → open → draining → closing → closed, or → lost (from opening, open or draining)
//
// Invariant: the phase only moves forward. Requests are sent only while 'open' (the worker has
// loaded the handler and started its loop: THREAD_ID is set); after 'lost' or 'closing' nothing is
// written, no wait is armed again, and callbacks of this channel do nothing — a replacement is a
// new WorkerChannel. An opening channel that does not open within BOOT_MS is lost. 'opening' →
// 'open' happens when the worker sets the OPEN word (its loop loaded the handler and started).
// 'draining' (a reload's old version, reload.ts): the channel takes no new request, PEER or
// session — send() and introduce() refuse, so the scheduler never picks it and a connection
// bound to it parks — while everything it already carries goes on as when open: outcomes are
// read, ABANDON and session records written, the watchdog scans it. An opening channel asked to
// drain opens straight into 'draining'.
// Handlers' room calls (ROOM records) are handed to onRoom as drain() reads them, in ring order
// with the outcomes; their answers (ROOM_ACK) take the ordered outbound path, never after 'lost'.

import { MessageChannel, type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import {
  BIG,
  CHANNEL_SIZES,
  type ChannelBuffers,
  type ChannelSizes,
  Ctl,
  KIND_MASK,
  Kind,
  Meter,
  PEER_CACHE,
  SHORT,
  SHORT_RUN_MS,
  UNORDERED,
  URGENT,
  allocateChannel,
  peerPayload,
} from './channel-protocol.js';
import { TO_MAIN, TO_WORKER, ringAlways, sleep } from './doorbell.js';
import { RecordWriter } from './record-writer.js';
import { RingReader, RingWriter } from './ring.js';
import { type ChannelSessionEnd, encodeSessionMessage, readSessionMessage } from './session-port.js';
import { type SlotEntry, SlotTable } from './slot-table.js';

export type { SlotEntry };

const EMPTY = new Uint8Array(0);

/** How long a channel may take to open (its worker booting and loading the handler) before it counts as lost. */
const BOOT_MS = 30_000;

export type ChannelPhase = 'opening' | 'open' | 'draining' | 'closing' | 'closed' | 'lost';

/** An outcome read from the reply ring. */
export type ReplyKind = typeof Kind.REPLY | typeof Kind.NO_REPLY | typeof Kind.ERROR;

/** Receives each outcome: the request's entry (its slot already freed), the outcome's bytes (a copy), the handler's run time. */
export type Deliver<C> = (entry: SlotEntry<C>, kind: ReplyKind, bytes: Buffer | null, micros: number) => void;

export class WorkerChannel<C> {
  /** Position of this channel among its dispatcher's channels. */
  readonly index: number;
  readonly buffers: ChannelBuffers;
  /** The worker's end of the port that carries payloads too big for a ring record. */
  readonly workerPort: MessagePort;
  readonly #port: MessagePort;
  readonly #ctl: Int32Array;
  readonly #meters: Float64Array;
  readonly #out: RecordWriter;
  readonly #replies: RingReader;
  readonly #slots: SlotTable<C>;
  #phase: ChannelPhase = 'opening';
  #bootTimer: NodeJS.Timeout | undefined;
  /** Requests written to this channel (compared with the worker's SYNC_DONE for the queue length). */
  #sent = 0;
  /** PEER records written; a connection introduced at n is remembered while #peers - n < PEER_CACHE. */
  #peers = 0;
  /** Predicted milliseconds of the non-urgent requests sent and not answered: the worker's queued heavy work. */
  work = 0;
  /** Non-urgent requests sent and not answered. */
  heavy = 0;
  /** Suspect requests sent and not answered (scheduler.ts, the bulkhead): while any is, no other connection's request comes here. */
  suspects = 0;
  #lastBusyMicros = 0;
  #lastSyncDone = 0;
  #waiting = false;
  /** beginDraining() came while opening: the channel opens into 'draining'. */
  #drainWhenOpen = false;
  /** Sessions carried by this channel, by number. */
  readonly #sessions = new Map<number, ChannelSessionEnd>();
  /** The ref the watchdog stopped the worker for (STALLED: its event loop stopped turning), or 0: a worker is stopped at most once. */
  killedFor = 0;
  /** The watchdog's last PING (its number and Date.now() when sent), answered once `pong` equals it. */
  pingNumber = 0;
  pingAt = 0;
  /** Told when the channel opens, and when a full ring may have room again. */
  onReady: (() => void) | null = null;
  /** Told once if the channel does not open within BOOT_MS. */
  onBootTimeout: (() => void) | null = null;
  /** Told of each ROOM record (a handler's room call), in ring order with the outcomes: its call number, operation and payload (a copy). */
  onRoom: ((call: number, op: number, payload: Buffer) => void) | null = null;

  constructor(index: number, sizes: ChannelSizes = CHANNEL_SIZES) {
    this.index = index;
    this.buffers = allocateChannel(sizes);
    this.#ctl = new Int32Array(this.buffers.control);
    this.#meters = new Float64Array(this.buffers.meters);
    this.#slots = new SlotTable<C>(this.buffers.states, this.buffers.started, sizes.slots);
    this.#replies = new RingReader(this.buffers.reply, this.#ctl, Ctl.REP_WRITE, Ctl.REP_READ);
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.workerPort = port2;
    port1.unref();
    this.#out = new RecordWriter(new RingWriter(this.buffers.request, this.#ctl, Ctl.REQ_WRITE, Ctl.REQ_READ), this.#ctl, port1, sizes.maxRecordBytes);
    this.#out.onRoom = () => this.onReady?.();
    // Ends when the channel opens or leaves 'opening' any other way.
    this.#bootTimer = setTimeout(() => {
      this.#bootTimer = undefined;
      if (this.#phase === 'opening') this.onBootTimeout?.();
    }, BOOT_MS);
    this.#bootTimer.unref();
  }

  get phase(): ChannelPhase {
    return this.#phase;
  }

  /** Takes requests: open, and neither closing nor lost. */
  get open(): boolean {
    return this.#phase === 'open';
  }

  /** Its loop serves what it carries: open, or draining. */
  get running(): boolean {
    return this.#phase === 'open' || this.#phase === 'draining';
  }

  /** Will never carry anything again (draining is not gone: what it carries goes on). */
  get gone(): boolean {
    return this.#phase === 'closing' || this.#phase === 'closed' || this.#phase === 'lost';
  }

  /** Requests written that the worker has not finished the synchronous part of. */
  get queued(): number {
    return this.#sent - Atomics.load(this.#ctl, Ctl.SYNC_DONE);
  }

  /** Requests outstanding (queued, running or awaiting). */
  get used(): number {
    return this.#slots.used;
  }

  /** May take one more request now (open, a free slot, a ring not found full since the worker last read). */
  get accepting(): boolean {
    return this.#phase === 'open' && !this.#slots.full && !this.#out.full;
  }

  /** The worker thread running this channel, once its loop has started (0 before). */
  get threadId(): number {
    return Atomics.load(this.#ctl, Ctl.THREAD_ID);
  }

  /** Wakes this side lost (tests expect 0), and wakes sent each way (cost accounting). */
  get wakeCounts(): { missed: number; toMain: number; toWorker: number } {
    return {
      missed: Atomics.load(this.#ctl, Ctl.MISSED_WAKES),
      toMain: Atomics.load(this.#ctl, Ctl.WAKES_TO_MAIN),
      toWorker: Atomics.load(this.#ctl, Ctl.WAKES_TO_WORKER),
    };
  }

  /** The worker's OS thread id (Linux), once open; 0 otherwise. */
  get osThreadId(): number {
    return Atomics.load(this.#ctl, Ctl.OS_TID);
  }

  /** Milliseconds the worker's loop has spent running handlers, and asleep with nothing to run (cumulative). */
  get threadTimes(): { busyMs: number; idleMs: number } {
    return { busyMs: this.#meters[Meter.BUSY_MS]!, idleMs: this.#meters[Meter.IDLE_MS]! };
  }

  /** Whether a connection introduced at PEER number `introduced` (0 = never) is still known to the worker. */
  knowsPeer(introduced: number): boolean {
    return introduced > 0 && this.#peers - introduced < PEER_CACHE;
  }

  /** Writes a PEER record; returns its number (to pass to knowsPeer later), or 0 if there is no room. */
  introduce(conn: number, address: Buffer): number {
    if (this.#phase !== 'open' || !this.#out.tryWrite(Kind.PEER, 0, conn, address)) return 0;
    return ++this.#peers;
  }

  /**
   * Writes a request; false when the channel takes none now (not open, slots or ring full).
   * `ordered`: the worker runs this connection's requests one after another, async ones included.
   */
  send(entry: SlotEntry<C>, connId: number, ordered: boolean): boolean {
    if (this.#phase !== 'open') return false;
    const ref = this.#slots.take(entry);
    if (ref === 0) return false;
    const flags = (ordered ? 0 : UNORDERED) | (entry.urgent ? URGENT : 0) | (entry.est < SHORT_RUN_MS ? SHORT : 0);
    if (!this.#out.tryWrite(Kind.REQUEST | flags, ref, connId, entry.request)) {
      this.#slots.free(ref); // never published: the slot was not used
      entry.ref = 0;
      return false;
    }
    this.#sent++;
    if (!entry.urgent) {
      this.work += entry.est;
      this.heavy++;
    }
    if (entry.suspect) this.suspects++;
    return true;
  }

  /**
   * Takes back requests not started yet, last first, so that what is taken back is always a tail
   * of `entries` (a connection's requests in order): it stops at the first one the worker has
   * started. Returns how many were taken back; their slots are freed.
   */
  revoke(entries: ReadonlyArray<SlotEntry<C>>): number {
    let revoked = 0;
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i]!;
      if (!this.#slots.revoke(entry)) break;
      this.#sent--;
      this.#account(entry);
      entry.ref = 0;
      revoked++;
    }
    return revoked;
  }

  /** The ref whose handler runs synchronously on the worker now (after a death: the one that ran when it died), or 0. */
  get runningRef(): number {
    return Atomics.load(this.#ctl, Ctl.RUNNING);
  }

  /** Epoch ms at which the synchronous run now holding the worker began, or 0 if none runs. */
  get runningSince(): number {
    const ref = this.runningRef;
    if (ref === 0) return 0;
    const entry = this.#slots.entry(ref);
    return entry === undefined ? 0 : this.#slots.startedAt(entry);
  }

  /** The requests written here that wait to start (not started, not revoked). */
  waitingEntries(): Array<SlotEntry<C>> {
    const waiting: Array<SlotEntry<C>> = [];
    for (const entry of this.#slots.outstanding()) if (!entry.abandoned && this.#slots.waiting(entry)) waiting.push(entry);
    return waiting;
  }

  /** Tells the worker that request `entry`'s handler is no longer awaited (watchdog): its connection may go on. */
  abandon(entry: SlotEntry<C>): void {
    entry.abandoned = true;
    // On the ordered path: it reaches the worker before any later request, even with the ring full
    // now. The worker acknowledges it with an outcome carrying the same ref, which frees the slot.
    this.#out.mustWrite(Kind.ABANDON, entry.ref, 0, EMPTY);
  }

  /** Asks the worker's loop to answer PING `number` (watchdog.ts); it goes in order with everything else. */
  ping(number: number, now: number): void {
    this.pingNumber = number;
    this.pingAt = now;
    this.#out.mustWrite(Kind.PING, number, 0, EMPTY);
  }

  /** The last PING the worker's loop answered. */
  get pong(): number {
    return Atomics.load(this.#ctl, Ctl.PONG);
  }

  /** Makes written records visible and wakes the worker if it sleeps. */
  publish(): void {
    this.#out.publish();
  }

  /**
   * A reload switched to a new version: from now on this channel takes no new request or session;
   * what it carries finishes here. From 'opening' it takes effect when the channel opens.
   */
  beginDraining(): void {
    if (this.#phase === 'open') this.#phase = 'draining';
    else if (this.#phase === 'opening') this.#drainWhenOpen = true;
  }

  /** Asks the worker's loop to end (server closing). */
  close(): void {
    if (this.gone) return;
    this.#phase = 'closing';
    this.#stop();
    Atomics.store(this.#ctl, Ctl.CLOSE, 1);
    ringAlways(this.#ctl, TO_WORKER);
  }

  /** The worker's loop ended after close(). */
  closed(): void {
    if (this.#phase === 'closing') this.#phase = 'closed';
  }

  /**
   * The worker is gone (died, stopped, its loop failed, or it did not open in time): nothing more
   * is written or awaited. Its loop, if it still runs (a late boot), is told to end.
   */
  lose(): void {
    if (this.#phase === 'lost' || this.#phase === 'closed') return;
    this.#phase = 'lost';
    this.#stop();
    Atomics.store(this.#ctl, Ctl.CLOSE, 1);
    ringAlways(this.#ctl, TO_WORKER);
  }

  #stop(): void {
    clearTimeout(this.#bootTimer);
    this.#bootTimer = undefined;
    this.#out.close();
    ringAlways(this.#ctl, TO_MAIN); // a pending wait of ours resolves and sees the phase
    this.#port.close();
  }

  /**
   * Reads every published outcome, in the order the worker finished them; `deliver` gets each one
   * whose ref is current (stale ones are skipped). Session records go to their sessions.
   */
  drain(deliver: Deliver<C>): number {
    const reader = this.#replies;
    let count = 0;
    while (reader.next()) {
      count++;
      const ref = reader.slot;
      const kind = (reader.kind & KIND_MASK) as ReplyKind;
      if (kind === (Kind.SESSION_DATA as number) || kind === (Kind.SESSION_CTRL as number)) {
        this.#receiveSession(reader, kind === (Kind.SESSION_DATA as number));
        continue;
      }
      if (kind === (Kind.ROOM as number)) {
        this.#receiveRoom(reader);
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
      const entry = this.#free(ref);
      if (entry) deliver(entry, kind, bytes, reader.conn);
    }
    if (count > 0) {
      reader.release();
      this.#out.clearFull(); // the worker has read since
    }
    return count;
  }

  /** True if outcomes are waiting to be drained. */
  get hasReplies(): boolean {
    return this.#replies.poll();
  }

  /**
   * Calls `wake` once the worker publishes outcomes, or opens (at once if either already
   * happened). One wait at a time; none once the channel is gone.
   */
  waitForReplies(wake: () => void): void {
    if (this.#waiting || this.gone) return;
    const waited = sleep(this.#ctl, TO_MAIN, () => this.gone || this.#replies.poll() || this.#opened());
    if (waited === null) {
      queueMicrotask(() => {
        if (!this.gone) wake();
      });
      return;
    }
    this.#waiting = true;
    void waited.then(() => {
      this.#waiting = false;
      if (!this.gone) wake();
    });
  }

  /** Moves 'opening' to 'open' (or 'draining') once the worker's loop has started; true when it just did. */
  #opened(): boolean {
    if (this.#phase !== 'opening' || Atomics.load(this.#ctl, Ctl.OPEN) === 0) return false;
    this.#phase = this.#drainWhenOpen ? 'draining' : 'open';
    clearTimeout(this.#bootTimer);
    this.#bootTimer = undefined;
    queueMicrotask(() => this.onReady?.());
    return true;
  }

  /** Answers room call `call` (a ROOM_ACK on the ordered outbound path): done, or the error's payload. */
  ackRoom(call: number, error: Buffer | null): void {
    if (this.gone) return;
    this.#out.mustWrite(Kind.ROOM_ACK, call, error === null ? 0 : 1, error ?? EMPTY);
  }

  #receiveRoom(reader: RingReader): void {
    let payload: Buffer;
    if (reader.kind & BIG) {
      const message = receiveMessageOnPort(this.#port);
      payload = message ? Buffer.from(message.message as ArrayBuffer) : Buffer.alloc(0);
    } else {
      payload = Buffer.allocUnsafe(reader.length); // a copy: members share it after the ring is released
      reader.bytes.copy(payload, 0, reader.start, reader.start + reader.length);
    }
    this.onRoom?.(reader.slot, reader.conn, payload);
  }

  /** Checks whether the loop has started (the reply wait also does); true if open. */
  checkOpen(): boolean {
    this.#opened();
    return this.#phase === 'open';
  }

  // ---- sessions ------------------------------------------------------------------------

  /** Sessions on this channel now. */
  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** The sessions on this channel now (not taken: they go on). */
  sessionEnds(): IterableIterator<ChannelSessionEnd> {
    return this.#sessions.values();
  }

  /** Starts session `id` on the worker (for the connection `clientId`); its messages go to and come from `end`. */
  openSession(end: ChannelSessionEnd, clientAddress: readonly [string, number], clientId: string): void {
    this.#sessions.set(end.id, end);
    this.#out.mustWrite(Kind.SESSION_OPEN, 0, end.id, peerPayload(clientAddress, clientId));
  }

  sendSession(id: number, message: { t: string; b?: ArrayBuffer }): void {
    if (this.gone) return;
    const { data, payload } = encodeSessionMessage(message);
    this.#out.mustWrite(data ? Kind.SESSION_DATA : Kind.SESSION_CTRL, 0, id, payload);
  }

  /** The main thread's end of session `id` closed: its later messages are dropped. */
  forgetSession(id: number): void {
    this.#sessions.delete(id);
  }

  /** After the worker is gone: every session it carried (their handlers are gone). */
  takeSessions(): ChannelSessionEnd[] {
    const ends = [...this.#sessions.values()];
    this.#sessions.clear();
    return ends;
  }

  #receiveSession(reader: RingReader, data: boolean): void {
    const message = readSessionMessage(reader, data, this.#port);
    const end = this.#sessions.get(reader.slot);
    if (!end) return;
    if ((message as { t: string }).t === 'end') this.#sessions.delete(end.id);
    end.receive(message);
  }

  // ---- what the pool reads -------------------------------------------------------------

  /** Handler CPU milliseconds and synchronous completions since the last call (cost measurement). */
  progress(): { busyMs: number; done: number } {
    const busy = Atomics.load(this.#ctl, Ctl.BUSY_MICROS);
    const done = Atomics.load(this.#ctl, Ctl.SYNC_DONE);
    const result = { busyMs: ((busy - this.#lastBusyMicros) | 0) / 1000, done: done - this.#lastSyncDone };
    this.#lastBusyMicros = busy;
    this.#lastSyncDone = done;
    return result;
  }

  /** Started requests whose handler has run longer than `limitMs`: the one holding the thread now (or null), and awaiting async ones. */
  overdue(now: number, limitMs: number): { running: SlotEntry<C> | null; awaiting: Array<SlotEntry<C>> } {
    const runningRef = Atomics.load(this.#ctl, Ctl.RUNNING);
    let running: SlotEntry<C> | null = null;
    const awaiting: Array<SlotEntry<C>> = [];
    for (const entry of this.#slots.outstanding()) {
      if (entry.abandoned || !this.#slots.started(entry)) continue;
      if (now - this.#slots.startedAt(entry) <= limitMs) continue;
      if (entry.ref === runningRef) running = entry;
      else awaiting.push(entry);
    }
    return { running, awaiting };
  }

  /**
   * After the worker is gone: every outstanding request, split by whether its handler had
   * started, every slot freed. Call drain() first, so what finished is delivered, not judged.
   */
  takeOutstanding(): { started: Array<SlotEntry<C>>; queued: Array<SlotEntry<C>> } {
    const taken = this.#slots.takeAll();
    for (const entry of [...taken.started, ...taken.queued]) this.#account(entry);
    return taken;
  }

  #free(ref: number): SlotEntry<C> | undefined {
    const entry = this.#slots.free(ref);
    if (entry) this.#account(entry);
    return entry;
  }

  #account(entry: SlotEntry<C>): void {
    if (!entry.urgent) this.work = --this.heavy === 0 ? 0 : this.work - entry.est;
    if (entry.suspect) this.suspects--;
  }
}

