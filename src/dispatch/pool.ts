// Owns pooled dispatch (ThreadingTCPServer): the scheduler between connections and the workers'
// channels (worker-channel.ts). Requests stream: each is written into a worker's ring as soon as
// the worker has room for it, and each outcome comes back the moment its handler finishes.
//
//   - One connection's requests run in order, one after another (Python's ThreadingTCPServer,
//     Netty's channel-per-executor): while a connection has requests on a worker, its next ones go
//     to that same worker's ring, which runs them in sequence. Parallelism comes from many
//     connections. `pipelining: 'parallel'` lets a stateless handler's pipelined requests spread.
//   - Costs are learned per command (request-costs.ts). Requests predicted cheap go first: here,
//     ahead of queued heavy ones, and in the worker, between two runs — so a cheap request waits
//     for the heavy run in progress, not for a queue. Heavy requests are metered: each worker
//     gets about `workerQueueMs` of predicted work (at least two requests, so it never idles for
//     a round trip), least loaded first. The rest wait here, round-robin across connections (a
//     quantum per visit), so one client cannot queue ahead of everyone.
//   - Each request runs at most once. When a worker dies, or a handler overruns requestTimeout
//     (the watchdog counts from the request's start), the outcomes already published are
//     delivered, the request that had started fails (ERR_WORKER_DIED / ERR_REQUEST_TIMEOUT), and
//     the ones it never started go to another worker (a handler declared `idempotent` gets its
//     started request run once more instead).
//   - Sessions (StreamRequestHandler) go to the channel carrying the fewest, as records on its rings.
//   - Bounded: maxQueuedRequests here (then connections stop reading), a worker's credit, and its
//     channel's slots — which also bound async handlers still awaiting, with or without a timeout.

import { performance } from 'node:perf_hooks';
import { ErrorCodes, type ErrorInfo, SockservError, fromErrorInfo } from '../errors.js';
import type { ClientAddress, HandlerKind, ServerInfo } from '../handler.js';
import type { HandlerRef } from '../handler-module.js';
import type { Logger } from '../logger.js';
import type { ResolvedOptions } from '../options.js';
import { Kind } from './channel-layout.js';
import type { Dispatcher, DispatcherStats, RequestSink } from './dispatcher.js';
import { type ConnQueue, Lane } from './conn-queue.js';
import { InlineLane } from './inline-lane.js';
import { RequestCosts } from './request-costs.js';
import { type ReplyKind, type SlotEntry, WorkerChannel } from './worker-channel.js';
import { ChannelSessionEnd, type SessionPort } from './session-port.js';
import type { WorkerPool } from './worker-pool.js';

type Limits = Pick<ResolvedOptions, 'maxQueuedRequests' | 'requestTimeout' | 'workerQueueMs' | 'pipelining' | 'readHighWaterMark' | 'maxFrameBytes'>;

/** How long close() waits for the channel loops to end before the pool stops their threads. */
const CLOSE_GRACE_MS = 1000;
/** A worker always holds this many heavy requests when there are any, so it never idles for a round trip. */
const MIN_HEAVY = 2;
/** Worker time one connection may claim per visit of the round-robin. */
const QUANTUM_MS = 0.25;
/** Requests predicted to run shorter than this are urgent: they go ahead of heavy ones. */
const URGENT_BELOW_MS = 0.1;
/** Urgent requests a worker may have queued (they are cheap; this only bounds a flood). */
const URGENT_QUEUE = 1024;

export class PoolDispatcher implements Dispatcher {
  readonly #pool: WorkerPool;
  readonly #ownsPool: boolean;
  readonly #handler: HandlerRef;
  readonly #limits: Limits;
  readonly #logger: Logger;
  readonly #ordered: boolean;
  #server: ServerInfo | undefined;
  #kind: HandlerKind = 'request';
  /** The handler declared its requests safe to run twice: one that was running on a dead worker runs once more. */
  #idempotent = false;
  #sessions = 0;
  #channels: Array<WorkerChannel<ConnQueue>> = [];
  /** The piscina tasks running the channels' loops, until they end. */
  readonly #loops = new Set<Promise<unknown>>();
  /** Connections with requests waiting here, round-robin: those whose next request is urgent, and the rest. */
  readonly #urgentLane = new Lane();
  readonly #heavyLane = new Lane();
  readonly #costs: RequestCosts;
  /** Per channel index: connections waiting for room on that channel. */
  #parked: ConnQueue[][] = [];
  readonly #conns = new WeakMap<RequestSink, ConnQueue>();
  #nextConnId = 0;
  #nextSessionId = 0;
  /** Requests waiting here (not yet written to a channel). */
  #queued = 0;
  #waiters = new Set<RequestSink>();
  #flushScheduled = false;
  #busyMs = 0;
  readonly #startedAt = performance.now();
  #watchdog: NodeJS.Timeout | undefined;
  #closed = false;
  readonly #flush = () => this.#flushQueue();
  /** Runs cheap requests on the main thread when inlineBelowMicros is set; null otherwise. */
  readonly #lane: InlineLane | null;

  constructor(pool: WorkerPool, ownsPool: boolean, handler: HandlerRef, options: ResolvedOptions, logger: Logger) {
    this.#pool = pool;
    this.#ownsPool = ownsPool;
    this.#handler = handler;
    this.#limits = options;
    this.#logger = logger;
    this.#ordered = options.pipelining !== 'parallel';
    this.#costs = new RequestCosts(options.workerQueueMs);
    this.#lane = options.inlineBelowMicros > 0 ? new InlineLane(handler, options, logger) : null;
  }

  get handlerKind(): HandlerKind {
    return this.#kind;
  }

  async start(server: ServerInfo): Promise<void> {
    this.#server = server;
    const loaded = await this.#pool.preload(this.#handler);
    this.#kind = loaded.kind;
    this.#idempotent = loaded.idempotent;
    for (let i = 0; i < this.#pool.workers; i++) this.#openChannel(i);
    if (this.#kind !== 'request') return; // a session server's channels carry sessions only
    const { requestTimeout } = this.#limits;
    if (requestTimeout > 0) {
      this.#watchdog = setInterval(() => this.#checkOverdue(), Math.min(1000, Math.max(5, requestTimeout / 4)));
      this.#watchdog.unref();
    }
    await this.#lane?.start(server, this.#kind);
  }

  /** A session goes to the channel (worker) carrying the fewest; its bytes ride that channel's rings. */
  startSession(clientAddress: ClientAddress): { port: SessionPort; done: Promise<void> } {
    let channel = this.#channels[0]!;
    for (const candidate of this.#channels) {
      if (channel.dead || (!candidate.dead && candidate.sessionCount < channel.sessionCount)) channel = candidate;
    }
    const end = new ChannelSessionEnd(channel, (this.#nextSessionId = (this.#nextSessionId + 1) >>> 0));
    channel.openSession(end, clientAddress);
    this.#sessions++;
    const ended = () => {
      this.#sessions--;
    };
    end.done.then(ended, ended);
    return { port: end, done: end.done };
  }

  hasCapacity(): boolean {
    return this.#queued < this.#limits.maxQueuedRequests;
  }

  waitForCapacity(sink: RequestSink): void {
    this.#waiters.add(sink);
  }

  submit(sink: RequestSink, seq: number, request: Buffer): void {
    let conn = this.#conns.get(sink);
    if (this.#lane?.active && (conn === undefined || (conn.outstanding === 0 && conn.head === conn.pending.length))) {
      this.#lane.submit(sink, seq, request);
      return;
    }
    conn ??= this.#newConn(sink);
    conn.pending.push({ conn, seq, request, abandoned: false, key: this.#costs.keyOf(request), est: 0, urgent: false });
    this.#queued++;
    if (!conn.ready && !conn.parked) this.#requeue(conn);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // Once per loop turn: everything framed in this poll phase is written, then published once.
      setImmediate(this.#flush);
    }
  }

  stats(): DispatcherStats {
    let running = this.#sessions;
    for (const channel of this.#channels) running += channel.used;
    const wallMs = performance.now() - this.#startedAt;
    const workers = this.#pool.workers;
    return {
      queued: this.#queued,
      running,
      workers,
      utilization: wallMs > 0 ? Math.min(1, this.#busyMs / (wallMs * workers)) : 0,
    };
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#watchdog);
    for (const channel of this.#channels) channel.close();
    // Let the loops end before the threads go: piscina would otherwise receive their results
    // after it forgot the tasks, and log them as errors. Bounded: a worker stuck in a handler
    // is stopped by the pool's close anyway.
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
    await Promise.race([Promise.allSettled(this.#loops), grace]);
    clearTimeout(timer);
    if (this.#ownsPool) await this.#pool.close();
  }

  // ---- channels --------------------------------------------------------------------------

  #openChannel(index: number): void {
    const channel = new WorkerChannel<ConnQueue>(index);
    this.#channels[index] = channel;
    this.#parked[index] ??= [];
    const task = {
      handler: this.#handler,
      server: this.#server!,
      buffers: channel.buffers,
      port: channel.workerPort,
      limits: { readHighWaterMark: this.#limits.readHighWaterMark, maxFrameBytes: this.#limits.maxFrameBytes },
    };
    const loop = this.#pool.runChannel(task, [channel.workerPort]);
    this.#loops.add(loop);
    loop.then(
      (outcome) => {
        this.#loops.delete(loop);
        this.#pool.channelEnded(channel.threadId);
        const error = (outcome as { error?: ErrorInfo } | null)?.error;
        if (error) this.#channelLost(channel, fromErrorInfo(error, ErrorCodes.HANDLER_LOAD), false);
      },
      (error: unknown) => {
        this.#loops.delete(loop);
        this.#channelLost(channel, error, true);
      },
    );
    channel.onRoom = () => {
      const parked = this.#parked[channel.index]!;
      if (parked.length > 0) {
        this.#parked[channel.index] = [];
        for (const conn of parked) this.#unpark(conn);
      }
      this.#scheduleFlush();
    };
    channel.waitForReplies(() => this.#onReplies(channel));
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#closed) return;
    this.#flushScheduled = true;
    setImmediate(this.#flush);
  }

  #onReplies(channel: WorkerChannel<ConnQueue>): void {
    if (channel.dead) return;
    this.#drain(channel);
    if (this.#queued > 0) this.#flushQueue();
    // Sleep again only at the end of this loop turn: replies the worker publishes meanwhile are
    // drained then, with this turn's socket writes, instead of waking this thread once each.
    setImmediate(() => {
      if (channel.dead) return;
      this.#drain(channel);
      if (this.#queued > 0) this.#flushQueue();
      channel.waitForReplies(() => this.#onReplies(channel));
    });
  }

  #drain(channel: WorkerChannel<ConnQueue>): void {
    if (channel.drain(this.#deliver) === 0) return;
    const { busyMs, done } = channel.progress();
    if (done > 0) {
      this.#busyMs += busyMs;
      this.#lane?.observePoolCost(busyMs / done);
    }
    const parked = this.#parked[channel.index]!;
    if (parked.length > 0) {
      this.#parked[channel.index] = [];
      for (const conn of parked) this.#unpark(conn);
    }
  }

  readonly #deliver = (entry: SlotEntry<ConnQueue>, kind: ReplyKind, bytes: Buffer | null, micros: number): void => {
    if (!entry.abandoned) this.#costs.learn(entry.key, micros / 1000); // an abandoned one's record is only an acknowledgement
    const conn = entry.conn;
    if (--conn.outstanding === 0) conn.channel = null;
    const sink = conn.sink;
    if (entry.abandoned || sink.closed) return;
    if (kind === Kind.REPLY) sink.complete(entry.seq, bytes);
    else if (kind === Kind.NO_REPLY) sink.complete(entry.seq, null);
    else sink.complete(entry.seq, null, fromErrorInfo(JSON.parse(bytes!.toString()) as ErrorInfo, ErrorCodes.HANDLER_FAILED));
  };

  // ---- the scheduler ---------------------------------------------------------------------

  #newConn(sink: RequestSink): ConnQueue {
    const conn: ConnQueue = {
      id: (this.#nextConnId = (this.#nextConnId + 1) >>> 0),
      sink,
      pending: [],
      head: 0,
      ready: false,
      parked: false,
      outstanding: 0,
      channel: null,
      peerOf: null,
      peerNumber: 0,
    };
    this.#conns.set(sink, conn);
    return conn;
  }

  /** A channel may take one more request of this class (urgent, or heavy predicted at `est` ms). */
  #hasRoom(channel: WorkerChannel<ConnQueue>, urgent: boolean, est: number): boolean {
    if (channel.dead || !channel.hasFreeSlot || channel.ringFull) return false;
    if (urgent) return channel.queued < URGENT_QUEUE;
    return channel.heavy < MIN_HEAVY || channel.work + est <= this.#limits.workerQueueMs;
  }

  /** The least loaded channel with room; the connection's last one when it is as lightly loaded (its worker knows the peer). */
  #pick(conn: ConnQueue, urgent: boolean, est: number): WorkerChannel<ConnQueue> | null {
    const best = this.#leastLoaded(urgent, est);
    const last = conn.peerOf;
    if (best === null || last === null || last === best) return best;
    return last.work <= best.work && this.#hasRoom(last, urgent, est) ? last : best;
  }

  #leastLoaded(urgent: boolean, est: number): WorkerChannel<ConnQueue> | null {
    let best: WorkerChannel<ConnQueue> | null = null;
    let least = Infinity;
    for (const channel of this.#channels) {
      if (!this.#hasRoom(channel, urgent, est)) continue;
      const load = channel.work + channel.queued * 1e-6; // queued heavy work first; then the count
      if (load < least) {
        least = load;
        best = channel;
      }
    }
    return best;
  }

  #flushQueue(): void {
    this.#flushScheduled = false;
    if (this.#closed) return;
    for (const channel of this.#channels) if (!channel.dead && channel.hasReplies) this.#drain(channel);
    this.#serve(this.#urgentLane, true);
    this.#serve(this.#heavyLane, false);
    if (!this.#urgentLane.empty) this.#serve(this.#urgentLane, true); // connections whose next request turned out cheap
    for (const channel of this.#channels) channel.publish();
    if (this.#waiters.size > 0 && this.hasCapacity()) this.#wakeWaiters();
  }

  /** Sends what the workers have room for from one lane, round-robin. */
  #serve(lane: Lane, urgent: boolean): void {
    const items = lane.items;
    while (lane.head < items.length) {
      const conn = items[lane.head]!;
      if (conn.sink.closed) {
        lane.head++;
        this.#dropPending(conn);
        continue;
      }
      const est = urgent ? 0 : this.#costs.estimate(conn.pending[conn.head]!.key);
      const bound = this.#ordered && conn.outstanding > 0 ? conn.channel : null;
      const channel = bound ?? this.#pick(conn, urgent, est);
      if (channel === null) break; // every worker has its share: replies will flush again
      lane.head++;
      conn.ready = false;
      if (!this.#sendRun(conn, channel, urgent)) {
        if (bound !== null || !channel.hasFreeSlot || channel.dead) this.#park(conn, channel);
        else this.#requeue(conn);
      } else if (conn.head < conn.pending.length) {
        this.#requeue(conn); // its quantum is spent, or its next request is of the other class
      }
    }
    lane.compact();
  }

  /**
   * Writes the connection's next requests of this class to `channel`, up to its quantum and the
   * channel's room. False if the channel ran out of room first.
   */
  #sendRun(conn: ConnQueue, channel: WorkerChannel<ConnQueue>, urgent: boolean): boolean {
    let spent = 0;
    while (conn.head < conn.pending.length && spent < QUANTUM_MS) {
      const entry = conn.pending[conn.head]!;
      const est = this.#costs.estimate(entry.key);
      if (est < URGENT_BELOW_MS !== urgent) break; // the next one belongs to the other lane
      if (!this.#hasRoom(channel, urgent, est) || !this.#introduce(conn, channel)) return false;
      entry.est = est;
      entry.urgent = urgent;
      if (!channel.send(entry, conn.id, this.#ordered)) return false;
      conn.pending[conn.head++] = undefined as unknown as SlotEntry<ConnQueue>;
      this.#queued--;
      conn.outstanding++;
      conn.channel = channel;
      spent += Math.max(est, 0.001);
    }
    if (conn.head === conn.pending.length) {
      conn.pending = [];
      conn.head = 0;
    }
    return true;
  }

  /** Makes sure the channel's worker knows the connection's address (a PEER record before its first request there). */
  #introduce(conn: ConnQueue, channel: WorkerChannel<ConnQueue>): boolean {
    if (conn.peerOf === channel && channel.knowsPeer(conn.peerNumber)) return true;
    const number = channel.introduce(conn.id, Buffer.from(JSON.stringify(conn.sink.clientAddress)));
    if (number === 0) return false;
    conn.peerOf = channel;
    conn.peerNumber = number;
    return true;
  }

  /** Puts the connection at the back of the lane of its next request's class. */
  #requeue(conn: ConnQueue): void {
    conn.ready = true;
    const next = conn.pending[conn.head]!;
    const lane = this.#costs.estimate(next.key) < URGENT_BELOW_MS ? this.#urgentLane : this.#heavyLane;
    lane.items.push(conn);
  }

  #park(conn: ConnQueue, channel: WorkerChannel<ConnQueue>): void {
    conn.parked = true;
    this.#parked[channel.index]!.push(conn);
  }

  #unpark(conn: ConnQueue): void {
    conn.parked = false;
    if (conn.head < conn.pending.length && !conn.ready) this.#requeue(conn);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  }

  #dropPending(conn: ConnQueue): void {
    conn.ready = false;
    this.#queued -= conn.pending.length - conn.head;
    conn.pending = [];
    conn.head = 0;
  }

  #wakeWaiters(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const sink of waiters) {
      if (!sink.closed) sink.pump();
      if (!this.hasCapacity()) {
        for (const rest of waiters.slice(waiters.indexOf(sink) + 1)) this.#waiters.add(rest);
        return;
      }
    }
  }

  // ---- failures --------------------------------------------------------------------------

  /**
   * The channel's worker died (`died`), or its loop ended with an error (the handler failed to
   * load there). Finished outcomes are delivered; started requests fail; the rest are sent again.
   */
  #channelLost(channel: WorkerChannel<ConnQueue>, error: unknown, died: boolean): void {
    const wasClosing = channel.dead;
    channel.dead = true;
    this.#drain(channel);
    const { started, queued } = channel.takeOutstanding();
    const sessions = channel.takeSessions();
    if (this.#closed || wasClosing) return;
    for (const end of sessions) {
      end.fail(died ? new SockservError(ErrorCodes.WORKER_DIED, `the worker running this session died: ${(error as Error)?.message ?? String(error)}`, { cause: error }) : error);
    }
    // Sent again first, in each connection's order, ahead of its later requests: failing a
    // started one below may make its connection submit more.
    const byConn = new Map<ConnQueue, Array<SlotEntry<ConnQueue>>>();
    if (died && this.#idempotent) {
      // Opt-in (BaseRequestHandler.idempotent): what was running when the worker died runs once
      // more elsewhere — unless it overran requestTimeout, or already had its second chance.
      for (let i = started.length - 1; i >= 0; i--) {
        const [slot, entry] = started[i]!;
        if (slot === channel.killedFor || entry.retried) continue;
        entry.retried = true;
        queued.push(entry);
        started.splice(i, 1);
      }
    }
    for (const entry of queued) {
      const conn = entry.conn;
      conn.outstanding--;
      if (conn.sink.closed || entry.abandoned) continue;
      let list = byConn.get(conn);
      if (!list) byConn.set(conn, (list = []));
      list.push(entry);
    }
    for (const [conn, list] of byConn) {
      list.sort((a, b) => a.seq - b.seq);
      conn.pending = list.concat(conn.pending.slice(conn.head));
      conn.head = 0;
      this.#queued += list.length;
      if (!conn.ready) {
        conn.parked = false;
        this.#requeue(conn);
      }
    }
    const touched = new Set<ConnQueue>(byConn.keys());
    for (const [, entry] of started) {
      entry.conn.outstanding--;
      touched.add(entry.conn);
    }
    for (const conn of touched) if (conn.outstanding === 0) conn.channel = null;
    for (const [slot, entry] of started) {
      const conn = entry.conn;
      if (entry.abandoned || conn.sink.closed) continue;
      let failure: SockservError;
      if (!died) failure = error as SockservError;
      else if (slot === channel.killedFor) {
        failure = new SockservError(ErrorCodes.REQUEST_TIMEOUT, `handler ran past requestTimeout (${this.#limits.requestTimeout} ms); its worker was stopped`);
      } else {
        failure = new SockservError(ErrorCodes.WORKER_DIED, `the worker running this request died: ${(error as Error)?.message ?? String(error)}`, { cause: error });
      }
      conn.sink.complete(entry.seq, null, failure);
    }
    for (const conn of this.#parked[channel.index]!.splice(0)) this.#unpark(conn);
    if (died && !this.#pool.closing) this.#openChannel(channel.index);
    else if (!died) {
      // The handler does not load on that worker: nothing sent there can run. Keep the channel
      // dead; if none is left, fail what waits.
      this.#logger.error({ err: error }, 'a worker could not load the handler');
      if (this.#channels.every((c) => c.dead)) this.#failAllPending(error as SockservError);
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(this.#flush);
    }
  }

  /** No worker can run the handler: every request waiting here fails with `error`. */
  #failAllPending(error: SockservError): void {
    const conns = new Set<ConnQueue>([...this.#urgentLane.items, ...this.#heavyLane.items, ...this.#parked.flat()]);
    for (const conn of conns) {
      const pending = conn.pending.slice(conn.head);
      this.#dropPending(conn);
      for (const entry of pending) if (!conn.sink.closed) conn.sink.complete(entry.seq, null, error);
    }
  }

  /** The watchdog: requests whose handler started more than requestTimeout ago. */
  #checkOverdue(): void {
    const limit = this.#limits.requestTimeout;
    const now = Date.now();
    for (const channel of this.#channels) {
      if (channel.dead) continue;
      this.#drain(channel); // what finished is delivered, not judged
      const { running, awaiting } = channel.overdue(now, limit);
      for (const slot of awaiting) {
        // An async handler still awaiting: its thread is fine, only this request is late.
        const entry = channel.entry(slot)!;
        channel.abandon(slot);
        if (!entry.conn.sink.closed) {
          entry.conn.sink.complete(
            entry.seq,
            null,
            new SockservError(ErrorCodes.REQUEST_TIMEOUT, `async handler did not settle within requestTimeout (${limit} ms)`),
          );
        }
      }
      if (running >= 0 && channel.killedFor < 0) {
        // A synchronous handler holds its thread: only stopping the thread ends it.
        channel.killedFor = running;
        if (!this.#pool.terminate(channel.threadId)) channel.killedFor = -1;
      }
    }
  }
}
