// Owns the worker side of a channel (src/dispatch/channel-layout.ts): one long-lived loop per
// worker and server that reads requests from the request ring, runs each through the handler and
// publishes its outcome to the reply ring the moment it is known — not when a batch ends.
//
//   - Before a handler starts, its slot is marked STARTED (and the outcomes before it are
//     published), so if this thread dies the main thread knows exactly what ran: at most once.
//   - Waking the main thread costs both threads a system call, so cheap outcomes are announced
//     together — when the ring runs dry, or every WAKE_AFTER_MS — while a run expected to be long
//     announces the ones before it first: a reply never waits behind a slow handler.
//   - One connection's requests run in sequence: while an async handler of a connection awaits,
//     that connection's later requests wait here (still QUEUED), other connections' requests run.
//   - Requests the main thread predicts cheap (URGENT) run before queued heavy ones of other
//     connections, checked between every two runs: a cheap request waits for the run in progress,
//     not for the queue.
//   - Waiting for work uses Atomics.waitAsync, never Atomics.wait: async handlers, sessions and
//     other channels on this thread keep running while the ring is empty.
//   - A full reply ring blocks this thread (Atomics.wait) until the main thread reads: that is the
//     backpressure, and the main thread never waits on a worker, so it cannot deadlock.

import { type MessagePort, receiveMessageOnPort, threadId } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import {
  BIG,
  CHANNEL_SIZES,
  type ChannelBuffers,
  Ctl,
  KIND_MASK,
  Kind,
  SlotState,
  UNORDERED,
  URGENT,
} from '../src/dispatch/channel-layout.js';
import { RingReader, RingWriter } from '../src/dispatch/ring.js';
import { PEER_CACHE } from '../src/dispatch/worker-channel.js';
import { toErrorInfo } from '../src/errors.js';
import type { AnyHandlerClass, ClientAddress, HandlerClass, ServerInfo } from '../src/handler.js';
import type { Reply } from '../src/reply.js';
import { isThenable, runHandler } from '../src/run-handler.js';
import { type SessionPort, encodeSessionMessage, readSessionMessage } from '../src/dispatch/session-port.js';
import type { SessionLimits } from '../src/session/protocol.js';
import { runSession } from '../src/session/run-session.js';

export interface ChannelTask {
  server: ServerInfo;
  buffers: ChannelBuffers;
  port: MessagePort;
  /** Limits of the sessions this channel may carry. */
  limits: SessionLimits;
}

/** An async run still awaiting: its connection (-1 unordered), and its identity for the late outcome. */
interface Awaiting {
  conn: number;
}

/** A request read from the ring, waiting to run; `conn` is -1 when its connection needs no order. */
interface Queued {
  slot: number;
  conn: number;
  request: Buffer;
  peer: ClientAddress;
}

const UNKNOWN_PEER: ClientAddress = ['', 0];
/** Runs expected to take longer than this announce the outcomes before them first. */
const WAKE_BEFORE_MS = 0.05;
/** Cheap outcomes are announced together, but never held longer than this. */
const WAKE_AFTER_MS = 0.05;
const COST_SMOOTHING = 0.1;
/** Longest wait without looking at the ring, wake or no wake. */
const WAKE_CHECK_MS = 50;

export class ChannelLoop {
  /** A BaseRequestHandler class on a request server's channel, a StreamRequestHandler on a session server's. */
  readonly #Handler: AnyHandlerClass;
  readonly #server: ServerInfo;
  readonly #port: MessagePort;
  readonly #ctl: Int32Array;
  readonly #states: Uint8Array;
  readonly #startedAt: Float64Array;
  readonly #requests: RingReader;
  readonly #replies: RingWriter;
  /** Client addresses by connection id; the oldest is dropped first, as the main thread mirrors. */
  readonly #peers = new Map<number, ClientAddress>();
  /** Connections with an async handler awaiting, and their requests held back meanwhile. */
  readonly #busy = new Map<number, Queued[]>();
  /** Connection of each slot whose async handler awaits. */
  readonly #awaiting = new Map<number, Awaiting>();
  /** Requests read from the ring and not started: cheap ones (URGENT) run first. */
  #urgent: Queued[] = [];
  #urgentHead = 0;
  #normal: Queued[] = [];
  #normalHead = 0;
  /** Per ordered connection: its requests in #normal, which its later cheap ones must not overtake. */
  readonly #normalPending = new Map<number, number>();
  /** Sessions this channel runs, by number. */
  readonly #sessions = new Map<number, WorkerSessionEnd>();
  readonly #limits: SessionLimits;
  #syncDone = 0;
  #busyMs = 0;
  /** Smoothed milliseconds per handler run: decides whether to wake the main thread before a run. */
  #costMs = 0;
  /** performance.now() of the oldest outcome published without waking the main thread, or -1. */
  #unannouncedSince = -1;

  constructor(Handler: AnyHandlerClass, task: ChannelTask) {
    this.#Handler = Handler;
    this.#server = task.server;
    this.#port = task.port;
    this.#limits = task.limits;
    const { buffers } = task;
    this.#ctl = new Int32Array(buffers.control);
    this.#states = new Uint8Array(buffers.states);
    this.#startedAt = new Float64Array(buffers.started);
    this.#requests = new RingReader(buffers.request, this.#ctl, Ctl.REQ_WRITE, Ctl.REQ_READ);
    this.#replies = new RingWriter(buffers.reply, this.#ctl, Ctl.REP_WRITE, Ctl.REP_READ);
  }

  /** Serves the channel until the main thread closes it. */
  async run(): Promise<null> {
    Atomics.store(this.#ctl, Ctl.THREAD_ID, threadId);
    while (Atomics.load(this.#ctl, Ctl.CLOSE) === 0) {
      this.#drain();
      await this.#waitForRequests();
    }
    this.#port.close();
    return null;
  }

  /** Runs every request there is — cheap ones first, each connection's in order — until none is left. */
  #drain(): void {
    this.#pull();
    for (;;) {
      let next: Queued | undefined;
      if (this.#urgentHead < this.#urgent.length) next = this.#urgent[this.#urgentHead++];
      else if (this.#normalHead < this.#normal.length) {
        next = this.#normal[this.#normalHead++];
        if (next!.conn >= 0) {
          const left = this.#normalPending.get(next!.conn)! - 1;
          if (left === 0) this.#normalPending.delete(next!.conn);
          else this.#normalPending.set(next!.conn, left);
        }
      } else break;
      const held = next!.conn >= 0 ? this.#busy.get(next!.conn) : undefined;
      if (held) held.push(next!);
      else this.#run(next!.slot, next!.conn, next!.request, next!.peer);
      this.#pull(); // a cheap request written meanwhile goes before the queued heavy ones
    }
    this.#urgent = [];
    this.#urgentHead = 0;
    this.#normal = [];
    this.#normalHead = 0;
    this.#publish();
  }

  /** Moves the requests published in the ring to the local queues (and applies PEER and ABANDON). */
  #pull(): void {
    const reader = this.#requests;
    if (!reader.poll()) return;
    while (reader.next()) {
      const kind = reader.kind & KIND_MASK;
      if (kind === Kind.PEER) {
        this.#remember(reader.conn, JSON.parse(reader.bytes.toString('utf8', reader.start, reader.start + reader.length)) as ClientAddress);
      } else if (kind === Kind.ABANDON) {
        // The watchdog gave up on it: acknowledge, so the main thread frees the slot (its late
        // outcome will be dropped here), and let its connection's next requests run.
        if (this.#awaiting.has(reader.slot)) this.#write(Kind.NO_REPLY, reader.slot, null, 0);
        this.#settled(reader.slot);
      } else if (kind === Kind.SESSION_OPEN) {
        this.#openSession(reader.conn, JSON.parse(reader.bytes.toString('utf8', reader.start, reader.start + reader.length)) as ClientAddress);
      } else if (kind === Kind.SESSION_DATA || kind === Kind.SESSION_CTRL) {
        this.#sessionMessage(reader, kind === Kind.SESSION_DATA);
      } else {
        const { slot } = reader;
        let request: Buffer;
        if (reader.kind & BIG) {
          const message = receiveMessageOnPort(this.#port);
          request = message ? Buffer.from(message.message as ArrayBuffer) : Buffer.alloc(0);
        } else {
          // A copy: the ring's bytes are reused once released, and a handler may keep its request.
          request = Buffer.allocUnsafe(reader.length);
          reader.bytes.copy(request, 0, reader.start, reader.start + reader.length);
        }
        const conn = (reader.kind & UNORDERED) === 0 ? reader.conn : -1;
        const entry: Queued = { slot, conn, request, peer: this.#peers.get(reader.conn) ?? UNKNOWN_PEER };
        // A cheap request jumps the queue, unless its own connection has requests queued before it.
        const behind = conn >= 0 ? this.#normalPending.get(conn) : undefined;
        if (reader.kind & URGENT && behind === undefined) this.#urgent.push(entry);
        else {
          this.#normal.push(entry);
          if (conn >= 0) this.#normalPending.set(conn, (behind ?? 0) + 1);
        }
      }
    }
    reader.release();
  }

  /** Runs one request; `conn` is -1 when its connection's requests need no order. */
  #run(slot: number, conn: number, request: Buffer, peer: ClientAddress): void {
    const ctl = this.#ctl;
    // What finished before this request survives this thread's death. The main thread is woken
    // for it now if this request is expected to take long; cheap runs are announced together.
    if (this.#replies.publish() && this.#costMs > WAKE_BEFORE_MS) this.#wakeMain();
    // The start time first: the watchdog reads it only once the state says STARTED. One clock
    // read serves both: the epoch time the main thread compares with Date.now(), and the run's cost.
    const started = performance.now();
    this.#startedAt[slot] = performance.timeOrigin + started;
    Atomics.store(ctl, Ctl.RUNNING, slot);
    Atomics.store(this.#states, slot, SlotState.STARTED);
    let outcome: Reply | Promise<Reply> = null;
    let failure: unknown;
    let failed = false;
    try {
      outcome = runHandler(this.#Handler as HandlerClass, request, peer, this.#server);
    } catch (error) {
      failed = true;
      failure = error;
    }
    const finished = performance.now();
    const took = finished - started;
    this.#busyMs += took;
    this.#costMs += COST_SMOOTHING * (took - this.#costMs);
    Atomics.store(ctl, Ctl.RUNNING, -1);
    Atomics.store(ctl, Ctl.BUSY_MICROS, Math.round(this.#busyMs * 1000) | 0);
    Atomics.store(ctl, Ctl.SYNC_DONE, ++this.#syncDone);
    const micros = Math.min(0xffffffff, Math.round(took * 1000));
    if (failed) this.#fail(slot, failure, micros);
    else if (isThenable<Reply>(outcome)) {
      // The run's own token: once abandoned, its slot may carry another request, and this
      // outcome must not be taken for that one's.
      const run: Awaiting = { conn };
      this.#awaiting.set(slot, run);
      if (conn >= 0) this.#busy.set(conn, []);
      outcome.then(
        (reply) => this.#lateOutcome(slot, run, () => this.#reply(slot, reply, micros)),
        (error: unknown) => this.#lateOutcome(slot, run, () => this.#fail(slot, error, micros)),
      );
    } else this.#reply(slot, outcome, micros);
    // A long run of cheap requests still streams: outcomes wait at most WAKE_AFTER_MS unannounced.
    if (this.#unannouncedSince < 0) this.#unannouncedSince = finished;
    else if (finished - this.#unannouncedSince > WAKE_AFTER_MS) this.#publish();
  }

  #lateOutcome(slot: number, run: Awaiting, write: () => void): void {
    if (this.#awaiting.get(slot) !== run) return; // abandoned by the watchdog: its slot is no longer ours
    write();
    this.#publish();
    this.#settled(slot);
  }

  /** `slot`'s async handler settled (or was abandoned): its connection's held requests may run. */
  #settled(slot: number): void {
    const run = this.#awaiting.get(slot);
    if (run === undefined) return;
    this.#awaiting.delete(slot);
    const conn = run.conn;
    if (conn < 0) return;
    const held = this.#busy.get(conn);
    this.#busy.delete(conn);
    if (!held) return;
    for (let i = 0; i < held.length; i++) {
      const next = held[i]!;
      this.#run(next.slot, conn, next.request, next.peer);
      const stillBusy = this.#busy.get(conn);
      if (stillBusy) {
        // Async again: the rest wait for this one.
        for (let j = i + 1; j < held.length; j++) stillBusy.push(held[j]!);
        break;
      }
    }
    this.#publish();
  }

  /** `micros`: how long the handler ran synchronously — the main thread learns request costs from it. */
  #reply(slot: number, reply: Reply, micros: number): void {
    if (reply === null) this.#write(Kind.NO_REPLY, slot, null, micros);
    else this.#write(Kind.REPLY, slot, reply, micros);
  }

  #fail(slot: number, error: unknown, micros: number): void {
    this.#write(Kind.ERROR, slot, Buffer.from(JSON.stringify(toErrorInfo(error))), micros);
  }

  /** Appends an outcome; big ones are transferred; a full ring waits for the main thread to read. */
  #write(kind: number, slot: number, bytes: Buffer | null, micros: number): void {
    if (bytes !== null && bytes.length > CHANNEL_SIZES.maxRecordBytes) {
      const copy = new ArrayBuffer(bytes.length);
      new Uint8Array(copy).set(bytes);
      this.#port.postMessage(copy, [copy]);
      bytes = null;
      kind |= BIG;
    }
    while (!this.#replies.write(kind, slot, micros, bytes)) {
      this.#publish();
      Atomics.wait(this.#ctl, Ctl.REP_READ, Atomics.load(this.#ctl, Ctl.REP_READ), 1);
    }
  }

  /** Makes the outcomes written so far visible, waking the main thread if it sleeps. */
  #publish(): void {
    this.#replies.publish();
    this.#wakeMain();
  }

  #wakeMain(): void {
    this.#unannouncedSince = -1;
    if (Atomics.load(this.#ctl, Ctl.MAIN_SLEEPING) === 1) Atomics.notify(this.#ctl, Ctl.REP_WRITE);
  }

  // ---- sessions ------------------------------------------------------------------------

  #openSession(id: number, clientAddress: ClientAddress): void {
    const end = new WorkerSessionEnd(this, id);
    this.#sessions.set(id, end);
    // The handler runs interleaved with this loop and the other sessions while it awaits;
    // runSession reports its end (and any error) as the session's last message.
    void runSession(this.#Handler, end, clientAddress, this.#server, this.#limits);
  }

  #sessionMessage(reader: RingReader, data: boolean): void {
    const message = readSessionMessage(reader, data, this.#port);
    this.#sessions.get(reader.conn)?.receive(message);
  }

  /** A session's message for the main thread: written at once, the main thread woken. */
  postSession(id: number, message: { t: string; b?: ArrayBuffer }): void {
    if (message.t === 'end') this.#sessions.delete(id);
    const { data, payload } = encodeSessionMessage(message);
    const kind = data ? Kind.SESSION_DATA : Kind.SESSION_CTRL;
    this.#write(kind, id, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), 0);
    this.#publish();
  }

  #remember(conn: number, peer: ClientAddress): void {
    // Re-inserted as the newest (Map.set would keep its old place): the main thread counts it
    // from this PEER on, so it must not be the next one forgotten here.
    this.#peers.delete(conn);
    this.#peers.set(conn, peer);
    if (this.#peers.size > PEER_CACHE) this.#peers.delete(this.#peers.keys().next().value!);
  }

  async #waitForRequests(): Promise<void> {
    const ctl = this.#ctl;
    Atomics.store(ctl, Ctl.WORKER_SLEEPING, 1);
    if (!this.#requests.poll() && Atomics.load(ctl, Ctl.CLOSE) === 0) {
      // Bounded: a notify that went astray costs at most WAKE_CHECK_MS, never a stalled channel.
      const waited = Atomics.waitAsync(ctl, Ctl.REQ_WRITE, this.#requests.seenEnd, WAKE_CHECK_MS);
      if (waited.async) await waited.value;
    }
    Atomics.store(ctl, Ctl.WORKER_SLEEPING, 0);
  }
}

/** The worker's end of a session carried by the channel (what SessionChannel talks to). */
class WorkerSessionEnd implements SessionPort {
  readonly #loop: ChannelLoop;
  readonly #id: number;
  #listener: ((message: unknown) => void) | null = null;
  #ended = false;

  constructor(loop: ChannelLoop, id: number) {
    this.#loop = loop;
    this.#id = id;
  }

  postMessage(message: unknown): void {
    if (this.#ended) return;
    if ((message as { t: string }).t === 'end') this.#ended = true;
    this.#loop.postSession(this.#id, message as { t: string; b?: ArrayBuffer });
  }

  on(_event: 'message', listener: (message: never) => void): this {
    this.#listener = listener as (message: unknown) => void;
    return this;
  }

  unref(): void {}

  close(): void {
    this.#ended = true;
  }

  receive(message: unknown): void {
    this.#listener?.(message);
  }
}
