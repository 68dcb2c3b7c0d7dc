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
} from '../src/dispatch/channel-layout.js';
import { RingReader, RingWriter } from '../src/dispatch/ring.js';
import { PEER_CACHE } from '../src/dispatch/worker-channel.js';
import { toErrorInfo } from '../src/errors.js';
import type { ClientAddress, HandlerClass, ServerInfo } from '../src/handler.js';
import type { Reply } from '../src/reply.js';
import { isThenable, runHandler } from '../src/run-handler.js';

export interface ChannelTask {
  server: ServerInfo;
  buffers: ChannelBuffers;
  port: MessagePort;
}

interface Deferred {
  slot: number;
  request: Buffer;
  peer: ClientAddress;
}

const UNKNOWN_PEER: ClientAddress = ['', 0];
/** Runs expected to take longer than this announce the outcomes before them first. */
const WAKE_BEFORE_MS = 0.05;
/** Cheap outcomes are announced together, but never held longer than this. */
const WAKE_AFTER_MS = 0.05;
const COST_SMOOTHING = 0.1;

export class ChannelLoop {
  readonly #Handler: HandlerClass;
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
  readonly #busy = new Map<number, Deferred[]>();
  /** Connection of each slot whose async handler awaits. */
  readonly #awaiting = new Map<number, number>();
  #syncDone = 0;
  #busyMs = 0;
  /** Smoothed milliseconds per handler run: decides whether to wake the main thread before a run. */
  #costMs = 0;
  /** performance.now() of the oldest outcome published without waking the main thread, or -1. */
  #unannouncedSince = -1;

  constructor(Handler: HandlerClass, task: ChannelTask) {
    this.#Handler = Handler;
    this.#server = task.server;
    this.#port = task.port;
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
    Atomics.store(this.#ctl, Ctl.READY, 1);
    while (Atomics.load(this.#ctl, Ctl.CLOSE) === 0) {
      this.#drain();
      await this.#waitForRequests();
    }
    this.#port.close();
    return null;
  }

  #drain(): void {
    const reader = this.#requests;
    while (reader.next()) {
      const kind = reader.kind & KIND_MASK;
      if (kind === Kind.PEER) {
        this.#remember(reader.conn, JSON.parse(reader.bytes.toString('utf8', reader.start, reader.start + reader.length)) as ClientAddress);
      } else if (kind === Kind.ABANDON) {
        this.#settled(reader.slot);
      } else {
        const { slot, conn } = reader;
        let request: Buffer;
        if (reader.kind & BIG) {
          const message = receiveMessageOnPort(this.#port);
          request = message ? Buffer.from(message.message as ArrayBuffer) : Buffer.alloc(0);
        } else {
          // A copy: the ring's bytes are reused once released, and a handler may keep its request.
          request = Buffer.allocUnsafe(reader.length);
          reader.bytes.copy(request, 0, reader.start, reader.start + reader.length);
        }
        const peer = this.#peers.get(conn) ?? UNKNOWN_PEER;
        const ordered = (reader.kind & UNORDERED) === 0;
        const held = ordered ? this.#busy.get(conn) : undefined;
        if (held) held.push({ slot, request, peer });
        else this.#run(slot, ordered ? conn : -1, request, peer);
      }
      reader.release();
    }
    this.#publish();
  }

  /** Runs one request; `conn` is -1 when its connection's requests need no order. */
  #run(slot: number, conn: number, request: Buffer, peer: ClientAddress): void {
    const ctl = this.#ctl;
    // What finished before this request survives this thread's death. The main thread is woken
    // for it now if this request is expected to take long; cheap runs are announced together.
    if (this.#replies.publish() && this.#costMs > WAKE_BEFORE_MS) this.#wakeMain();
    Atomics.store(this.#states, slot, SlotState.STARTED);
    this.#startedAt[slot] = Date.now();
    Atomics.store(ctl, Ctl.RUNNING, slot);
    const started = performance.now();
    let outcome: Reply | Promise<Reply> = null;
    let failure: unknown;
    let failed = false;
    try {
      outcome = runHandler(this.#Handler, request, peer, this.#server);
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
    if (failed) this.#fail(slot, failure);
    else if (isThenable<Reply>(outcome)) {
      this.#awaiting.set(slot, conn);
      if (conn >= 0) this.#busy.set(conn, []);
      outcome.then(
        (reply) => this.#lateOutcome(slot, () => this.#reply(slot, reply)),
        (error: unknown) => this.#lateOutcome(slot, () => this.#fail(slot, error)),
      );
    } else this.#reply(slot, outcome);
    // A long run of cheap requests still streams: outcomes wait at most WAKE_AFTER_MS unannounced.
    if (this.#unannouncedSince < 0) this.#unannouncedSince = finished;
    else if (finished - this.#unannouncedSince > WAKE_AFTER_MS) this.#publish();
  }

  #lateOutcome(slot: number, write: () => void): void {
    if (!this.#awaiting.has(slot)) return; // abandoned by the watchdog: its slot is no longer ours
    write();
    this.#publish();
    this.#settled(slot);
  }

  /** `slot`'s async handler settled (or was abandoned): its connection's held requests may run. */
  #settled(slot: number): void {
    const conn = this.#awaiting.get(slot);
    if (conn === undefined) return;
    this.#awaiting.delete(slot);
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

  #reply(slot: number, reply: Reply): void {
    if (reply === null) this.#write(Kind.NO_REPLY, slot, null);
    else this.#write(Kind.REPLY, slot, reply);
  }

  #fail(slot: number, error: unknown): void {
    this.#write(Kind.ERROR, slot, Buffer.from(JSON.stringify(toErrorInfo(error))));
  }

  /** Appends an outcome; big ones are transferred; a full ring waits for the main thread to read. */
  #write(kind: number, slot: number, bytes: Buffer | null): void {
    if (bytes !== null && bytes.length > CHANNEL_SIZES.maxRecordBytes) {
      const copy = new ArrayBuffer(bytes.length);
      new Uint8Array(copy).set(bytes);
      this.#port.postMessage(copy, [copy]);
      bytes = null;
      kind |= BIG;
    }
    while (!this.#replies.write(kind, slot, 0, bytes)) {
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

  #remember(conn: number, peer: ClientAddress): void {
    this.#peers.set(conn, peer);
    if (this.#peers.size > PEER_CACHE) this.#peers.delete(this.#peers.keys().next().value!);
  }

  async #waitForRequests(): Promise<void> {
    const ctl = this.#ctl;
    Atomics.store(ctl, Ctl.WORKER_SLEEPING, 1);
    if (!this.#requests.poll() && Atomics.load(ctl, Ctl.CLOSE) === 0) {
      const waited = Atomics.waitAsync(ctl, Ctl.REQ_WRITE, this.#requests.seenEnd);
      if (waited.async) await waited.value;
    }
    Atomics.store(ctl, Ctl.WORKER_SLEEPING, 0);
  }
}
