// Owns the worker side of a channel (src/dispatch/channel-protocol.ts): one long-lived loop per
// worker and server that reads requests from the request ring into its run queue (run-queue.ts),
// runs each through the handler and writes its outcome (outcome-writer.ts) the moment it is known.
//
// Invariants:
//   - Before a handler starts, its slot's state is compare-exchanged from −ref to its ref (STARTED),
//     after its start time: if this thread dies the main thread knows exactly what ran — at most
//     once. If the exchange fails, the main thread revoked the request (it runs elsewhere) or the
//     slot moved on: it is dropped without an outcome.
//   - The duty cycle: a turn runs at most RUNS_PER_TURN requests or TURN_MS, then the thread's
//     event loop turns (setImmediate) before the next — async handlers' continuations and timers,
//     sessions and port messages never wait for the queue to empty. With nothing to run it sleeps on
//     the doorbell (Atomics.waitAsync, never Atomics.wait: async work keeps running meanwhile).
//   - A full reply ring stops new runs until its records are written (retried every
//     BLOCKED_RETRY_MS); the thread never blocks, and the main thread never waits on a worker.
//   - Once the loop has ended (closed, or an internal failure), nothing more runs here: a late
//     async outcome cannot start the requests held behind it.
//   - Handlers' room calls (rooms-client.ts) are written through the same outcome writer, so they
//     keep their order with the outcomes; their answers (ROOM_ACK) are read with the requests.

import { readlinkSync } from 'node:fs';
import { type MessagePort, receiveMessageOnPort, threadId } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import {
  BIG,
  type ChannelBuffers,
  Ctl,
  KIND_MASK,
  Kind,
  Meter,
  PEER_CACHE,
  SHORT,
  UNORDERED,
  URGENT,
  queuedState,
  readPeer,
  slotOf,
} from '../src/dispatch/channel-protocol.js';
import { TO_MAIN, TO_WORKER, ring, sleep } from '../src/dispatch/doorbell.js';
import { RingReader, RingWriter } from '../src/dispatch/ring.js';
import { type SessionPort, encodeSessionMessage, readSessionMessage } from '../src/dispatch/session-port.js';
import type { RoomTerms } from '../src/rooms/records.js';
import { safeErrorJson } from '../src/errors.js';
import type { AnyHandlerClass, ClientAddress, HandlerClass, ServerInfo } from '../src/handler.js';
import type { Reply } from '../src/reply.js';
import { isThenable, runHandler } from '../src/run-handler.js';
import type { SessionLimits } from '../src/session/protocol.js';
import { runSession } from '../src/session/run-session.js';
import { OutcomeWriter } from './outcome-writer.js';
import { RoomsClient } from './rooms-client.js';
import { type Queued, RunQueue } from './run-queue.js';

export interface ChannelTask {
  server: ServerInfo;
  buffers: ChannelBuffers;
  port: MessagePort;
  /** Limits of the sessions this channel may carry. */
  limits: SessionLimits;
  /** What the handlers' room calls must know of the server's rooms. */
  rooms: RoomTerms;
}

const UNKNOWN_PEER: Peer = { address: ['', 0], clientId: '' };

/** A connection as the worker knows it from its PEER record: its address, and its client id (rooms). */
interface Peer {
  address: ClientAddress;
  clientId: string;
}
/** A turn of the duty cycle ends after this many runs, or TURN_MS, whichever comes first (Netty checks its clock every 64 tasks). */
const RUNS_PER_TURN = 64;
const TURN_MS = 5;
/** How often a full reply ring is tried again (the main thread reads it every loop turn). */
const BLOCKED_RETRY_MS = 1;

export class ChannelLoop {
  /** A BaseRequestHandler class on a request server's channel, a StreamRequestHandler on a session server's. */
  readonly #Handler: AnyHandlerClass;
  readonly #server: ServerInfo;
  readonly #port: MessagePort;
  readonly #ctl: Int32Array;
  readonly #states: Int32Array;
  readonly #startedAt: Float64Array;
  /** The worker's time accounts (channel-protocol.ts Meter): busy in handlers, idle asleep. */
  readonly #meters: Float64Array;
  readonly #requests: RingReader;
  readonly #out: OutcomeWriter;
  readonly #queue = new RunQueue();
  /** Handlers' room calls, and their answers. */
  readonly #rooms: RoomsClient;
  /** Client addresses and ids by connection id; the oldest is dropped first, as the main thread mirrors. */
  readonly #peers = new Map<number, Peer>();
  /** Sessions this channel runs, by number. */
  readonly #sessions = new Map<number, WorkerSessionEnd>();
  readonly #limits: SessionLimits;
  #syncDone = 0;
  #busyMs = 0;
  /** The loop has ended: nothing more runs on this channel. */
  #ended = false;

  constructor(Handler: AnyHandlerClass, task: ChannelTask) {
    this.#Handler = Handler;
    this.#server = task.server;
    this.#port = task.port;
    this.#limits = task.limits;
    const { buffers } = task;
    this.#ctl = new Int32Array(buffers.control);
    this.#states = new Int32Array(buffers.states);
    this.#startedAt = new Float64Array(buffers.started);
    this.#meters = new Float64Array(buffers.meters);
    this.#requests = new RingReader(buffers.request, this.#ctl, Ctl.REQ_WRITE, Ctl.REQ_READ);
    this.#out = new OutcomeWriter(new RingWriter(buffers.reply, this.#ctl, Ctl.REP_WRITE, Ctl.REP_READ), this.#ctl, task.port);
    this.#rooms = new RoomsClient(this.#out, task.rooms);
  }

  /** Serves the channel until the main thread closes it. Ends on CLOSE; a failure in here ends it too (and rejects). */
  async run(): Promise<null> {
    // Open: the main thread sends requests from now on (it waits for this word).
    Atomics.store(this.#ctl, Ctl.THREAD_ID, threadId);
    Atomics.store(this.#ctl, Ctl.OS_TID, osThreadId());
    Atomics.store(this.#ctl, Ctl.OPEN, 1);
    ring(this.#ctl, TO_MAIN);
    try {
      while (!this.#closing()) {
        if (this.#out.blocked && !this.#out.flush()) {
          await delay(BLOCKED_RETRY_MS); // the main thread reads every loop turn of its own
          continue;
        }
        if (this.#turn()) await yieldToEventLoop();
        else {
          const asleep = sleep(this.#ctl, TO_WORKER, () => this.#requests.poll() || this.#closing() || this.#out.blocked);
          if (asleep !== null) {
            const from = performance.now();
            await asleep;
            this.#meters[Meter.IDLE_MS]! += performance.now() - from;
          }
        }
      }
    } finally {
      this.#ended = true;
      this.#rooms.close();
    }
    this.#port.close();
    return null;
  }

  #closing(): boolean {
    return Atomics.load(this.#ctl, Ctl.CLOSE) !== 0;
  }

  /** One turn of the duty cycle; true if work is left for the next turn. */
  #turn(): boolean {
    const started = performance.now();
    this.#pull(started);
    let now = started;
    let runs = 0;
    for (;;) {
      if (this.#out.blocked) return true;
      const next = this.#queue.next(now);
      if (next === undefined) break;
      now = this.#run(next);
      // A cheap request written meanwhile goes before the queued heavy ones (for up to the run
      // queue's NORMAL_WAIT_MS: then the older ones go first).
      this.#pull(now);
      if (++runs >= RUNS_PER_TURN || now - started >= TURN_MS) {
        if (this.#out.unannounced) this.#out.announce();
        return true;
      }
    }
    // The queue ran dry: whatever is unannounced goes now (a turn that published nothing — a PEER,
    // a PING — does not wake the main thread).
    if (this.#out.unannounced) this.#out.announce();
    return false;
  }

  /** Moves the records published in the ring to the run queue (and applies PEER, ABANDON and session records). */
  #pull(now: number): void {
    const reader = this.#requests;
    if (!reader.poll()) return;
    while (reader.next()) {
      const kind = reader.kind & KIND_MASK;
      if (kind === Kind.REQUEST) this.#queue.add(this.#readRequest(reader), now);
      else if (kind === Kind.PEER) this.#remember(reader.conn, readPeer(reader.bytes.toString('utf8', reader.start, reader.start + reader.length)));
      else if (kind === Kind.ABANDON) this.#abandon(reader.slot);
      else if (kind === Kind.PING) Atomics.store(this.#ctl, Ctl.PONG, reader.slot);
      else if (kind === Kind.ROOM_ACK) this.#rooms.settle(reader.slot, reader.conn, reader.length === 0 ? '' : reader.bytes.toString('utf8', reader.start, reader.start + reader.length));
      else if (kind === Kind.SESSION_OPEN) this.#openSession(reader.conn, readPeer(reader.bytes.toString('utf8', reader.start, reader.start + reader.length)));
      else if (kind === Kind.SESSION_DATA || kind === Kind.SESSION_CTRL) this.#sessionMessage(reader, kind === Kind.SESSION_DATA);
    }
    reader.release();
  }

  #readRequest(reader: RingReader): Queued {
    let request: Buffer;
    if (reader.kind & BIG) {
      const message = receiveMessageOnPort(this.#port);
      request = message ? Buffer.from(message.message as ArrayBuffer) : Buffer.alloc(0);
    } else {
      // A copy: the ring's bytes are reused once released, and a handler may keep its request.
      request = Buffer.allocUnsafe(reader.length);
      reader.bytes.copy(request, 0, reader.start, reader.start + reader.length);
    }
    const peer = this.#peers.get(reader.conn) ?? UNKNOWN_PEER;
    return {
      ref: reader.slot,
      conn: (reader.kind & UNORDERED) === 0 ? reader.conn : -1,
      request,
      peer: peer.address,
      clientId: peer.clientId,
      urgent: (reader.kind & URGENT) !== 0,
      short: (reader.kind & SHORT) !== 0,
      n: 0,
      at: 0,
    };
  }

  /** The watchdog gave up on `ref` while its async handler awaited: acknowledge (an outcome with its ref frees the slot), and let its connection go on. */
  #abandon(ref: number): void {
    if (!this.#queue.settled(ref)) return; // settled already: its outcome freed the slot
    this.#out.write(Kind.NO_REPLY, ref, null, 0);
  }

  /** Runs one request. */
  /** Returns when it finished (performance.now() ms): the loop's clock for what comes next. */
  #run(entry: Queued): number {
    const ctl = this.#ctl;
    const { ref } = entry;
    const slot = slotOf(ref);
    // The start time first: the watchdog reads it only once the state says STARTED. One clock
    // read serves both: the epoch time the main thread compares with Date.now(), and the run's cost.
    const started = performance.now();
    // What finished before this request is published (it survives this thread's death), and the
    // main thread is woken for it before this run starts — unless the writer may hold the wake
    // over this run (outcome-writer.ts: heavy outcomes only, a SHORT run, more work queued behind).
    if (this.#out.unannounced && !this.#out.mayHoldOver(entry.short, this.#queue.runnable, started)) this.#out.announce();
    this.#startedAt[slot] = performance.timeOrigin + started;
    // Start it, unless the main thread took it back first (revoked, to run elsewhere) or the slot
    // has moved on: then it is dropped, with no outcome.
    if (Atomics.compareExchange(this.#states, slot, queuedState(ref), ref) !== queuedState(ref)) return started;
    Atomics.store(ctl, Ctl.RUNNING, ref);
    let outcome: Reply | Promise<Reply> = null;
    let failure: unknown;
    let failed = false;
    try {
      outcome = runHandler(this.#Handler as HandlerClass, entry.request, entry.peer, this.#server, this.#rooms, entry.clientId);
    } catch (error) {
      failed = true;
      failure = error;
    }
    const finished = performance.now();
    const took = finished - started;
    this.#busyMs += took;
    this.#meters[Meter.BUSY_MS] = this.#busyMs;
    Atomics.store(ctl, Ctl.RUNNING, 0);
    Atomics.store(ctl, Ctl.BUSY_MICROS, Math.round(this.#busyMs * 1000) | 0);
    Atomics.store(ctl, Ctl.SYNC_DONE, ++this.#syncDone);
    const micros = Math.min(0xffffffff, Math.round(took * 1000));
    if (failed) this.#fail(ref, failure, micros);
    else if (isThenable<Reply>(outcome)) {
      this.#queue.awaiting(entry);
      outcome.then(
        (reply) => this.#late(ref, () => this.#reply(ref, reply, micros)),
        (error: unknown) => this.#late(ref, () => this.#fail(ref, error, micros)),
      );
    } else this.#reply(ref, outcome, micros);
    this.#out.publishRun(entry.urgent, finished);
    return finished;
  }

  /** An async run settled: its outcome is written only if it is still awaited (not abandoned); its connection goes on. */
  #late(ref: number, write: () => void): void {
    if (!this.#queue.settled(ref)) return;
    write();
    this.#out.announce();
    // Held requests now go first, or the outcome waits for room in a full ring: the loop may be
    // asleep on the doorbell — ring our own.
    if (!this.#ended && (this.#queue.size > 0 || this.#out.blocked)) ring(this.#ctl, TO_WORKER);
  }

  /** `micros`: how long the handler ran synchronously — the main thread learns request costs from it. */
  #reply(ref: number, reply: Reply, micros: number): void {
    if (reply === null) this.#out.write(Kind.NO_REPLY, ref, null, micros);
    else this.#out.write(Kind.REPLY, ref, reply, micros);
  }

  #fail(ref: number, error: unknown, micros: number): void {
    // Never throws, whatever was thrown (an object without a prototype, a Proxy, a getter that throws).
    this.#out.write(Kind.ERROR, ref, Buffer.from(safeErrorJson(error)), micros);
  }

  // ---- sessions ------------------------------------------------------------------------

  #openSession(id: number, peer: Peer): void {
    const end = new WorkerSessionEnd(this, id);
    this.#sessions.set(id, end);
    // The handler runs interleaved with this loop and the other sessions while it awaits;
    // runSession reports its end (and any error) as the session's last message.
    void runSession(this.#Handler, end, peer.address, this.#server, this.#limits, this.#rooms, peer.clientId);
  }

  #sessionMessage(reader: RingReader, data: boolean): void {
    const message = readSessionMessage(reader, data, this.#port);
    this.#sessions.get(reader.conn)?.receive(message);
  }

  /** A session's message for the main thread: written in order with the outcomes, the main thread woken. */
  postSession(id: number, message: { t: string; b?: ArrayBuffer }): void {
    if (message.t === 'end') this.#sessions.delete(id);
    if (this.#ended) return;
    const { data, payload } = encodeSessionMessage(message);
    this.#out.write(data ? Kind.SESSION_DATA : Kind.SESSION_CTRL, id, payload, 0);
    this.#out.announce();
    if (this.#out.blocked) ring(this.#ctl, TO_WORKER); // the loop writes what waits; it may be asleep
  }

  #remember(conn: number, peer: Peer): void {
    // Re-inserted as the newest (Map.set would keep its old place): the main thread counts it
    // from this PEER on, so it must not be the next one forgotten here.
    this.#peers.delete(conn);
    this.#peers.set(conn, peer);
    if (this.#peers.size > PEER_CACHE) this.#peers.delete(this.#peers.keys().next().value!);
  }
}

/** This thread's Linux thread id (/proc/<pid>/task/<tid>), or 0 where there is none. */
function osThreadId(): number {
  if (process.platform !== 'linux') return 0;
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) ? tid : 0;
  } catch {
    return 0;
  }
}

/** Lets the thread's event loop turn once (timers, I/O, async handlers' continuations). */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
