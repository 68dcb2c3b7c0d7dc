// Owns pooled dispatch (ThreadingTCPServer): the Dispatcher facade over the set of worker
// channels. It opens a channel per worker, feeds the scheduler's choices into them, delivers
// outcomes to connections, and when a channel is lost applies recovery (recovery.ts) and opens a
// replacement. The rules live one per file:
//
//   scheduler.ts      which request goes where, and when (order, cheap first, metering)
//   worker-channel.ts one channel's life and its shared memory (slots, rings, doorbell)
//   recovery.ts       what a lost channel's requests become (at most once)
//   watchdog.ts       requestTimeout
//
// Invariants held here: a replacement channel lives on a thread that no other channel of this
// server uses (it is placed only on a thread outside theirs, so it waits for the replacement worker
// to be ready rather than landing on a survivor). When no channel can ever run the handler again
// (every one lost to a load failure), waiting and later requests and sessions fail at once with
// that error. close() always finishes: channels are told to end, loops still loading the handler
// are waited for (a thread terminated inside module loading can abort the process), bounded.
// Handlers' room calls (ROOM records) go to the server's rooms (src/rooms/registry.ts) as each
// channel's drain reads them, in ring order with its outcomes, and are answered on that channel.

import { performance } from 'node:perf_hooks';
import { ErrorCodes, type ErrorInfo, SockservError, fromErrorInfo, requestTimeout, workerDied } from '../errors.js';
import type { ClientAddress, HandlerKind, ServerInfo } from '../handler.js';
import type { HandlerRef } from '../handler-module.js';
import type { Logger } from '../logger.js';
import type { ResolvedOptions } from '../options.js';
import type { PoolCounters } from '../stats.js';
import type { Reply } from '../reply.js';
import { encodeRoomError } from '../rooms/records.js';
import type { RoomRegistry } from '../rooms/registry.js';
import { Kind } from './channel-protocol.js';
import type { Dispatcher, DispatcherStats, RequestSink } from './dispatcher.js';
import { InlineLane } from './inline-lane.js';
import { type LossCause, recover } from './recovery.js';
import { type ConnQueue, type Entry, Scheduler } from './scheduler.js';
import { ChannelSessionEnd, type SessionPort } from './session-port.js';
import { Watchdog } from './watchdog.js';
import { type ReplyKind, WorkerChannel } from './worker-channel.js';
import type { WorkerPool } from './worker-pool.js';

type Limits = Pick<ResolvedOptions, 'maxQueuedRequests' | 'requestTimeout' | 'workerQueueMs' | 'pipelining' | 'readHighWaterMark' | 'maxFrameBytes'>;
type Channel = WorkerChannel<ConnQueue>;

/** How long close() waits for running channel loops to end before the pool stops their threads. */
const CLOSE_GRACE_MS = 1000;
/** How long close() waits for a loop still loading the handler (never terminate a thread inside module loading). */
const BOOT_GRACE_MS = 10_000;

export class PoolDispatcher implements Dispatcher {
  readonly #pool: WorkerPool;
  readonly #ownsPool: boolean;
  readonly #handler: HandlerRef;
  readonly #limits: Limits;
  readonly #logger: Logger;
  readonly #rooms: RoomRegistry;
  readonly #scheduler: Scheduler;
  #server: ServerInfo | undefined;
  #kind: HandlerKind = 'request';
  /** The handler declared its requests safe to run twice: one that was running on a dead worker runs once more. */
  #idempotent = false;
  #sessions = 0;
  #channels: Channel[] = [];
  /** The thread each channel was placed on (by index), so a replacement avoids the others'. */
  readonly #placedOn: number[] = [];
  /** The piscina tasks running the channels' loops, until they end. */
  readonly #loops = new Set<Promise<unknown>>();
  #nextSessionId = 0;
  #waiters = new Set<RequestSink>();
  #flushScheduled = false;
  #busyMs = 0;
  readonly #startedAt = performance.now();
  #watchdog: Watchdog<ConnQueue> | null = null;
  #closing = false;
  /** Every channel was lost to a load failure: no request can run any more; this is why. */
  #unusable: SockservError | null = null;
  readonly #flush = () => this.#flushQueue();
  /** Runs cheap requests on the main thread when inlineBelowMicros is set; null otherwise. */
  readonly #lane: InlineLane | null;
  /** The accounts of channels that are gone (stats() adds the live ones'). */
  readonly #retired: PoolCounters = { workerBusyMs: 0, workerIdleMs: 0, wakesToMain: 0, wakesToWorker: 0, missedWakes: 0 };
  /** Per connection, the sink its inline runs report through (it counts them). */
  readonly #inlineSinks = new WeakMap<ConnQueue, RequestSink>();

  constructor(pool: WorkerPool, ownsPool: boolean, handler: HandlerRef, options: ResolvedOptions, logger: Logger, rooms: RoomRegistry) {
    this.#pool = pool;
    this.#ownsPool = ownsPool;
    this.#handler = handler;
    this.#limits = options;
    this.#logger = logger;
    this.#rooms = rooms;
    this.#scheduler = new Scheduler(options.pipelining !== 'parallel', options.workerQueueMs);
    this.#lane = options.inlineBelowMicros > 0 ? new InlineLane(handler, options, logger, rooms) : null;
  }

  get handlerKind(): HandlerKind {
    return this.#kind;
  }

  async start(server: ServerInfo): Promise<void> {
    this.#server = server;
    const loaded = await this.#pool.preload(this.#handler);
    this.#kind = loaded.kind;
    this.#idempotent = loaded.idempotent;
    const opened: Array<Promise<void>> = [];
    for (let i = 0; i < this.#pool.workers; i++) opened.push(this.#openChannel(i));
    await Promise.all(opened);
    if (this.#unusable) throw this.#unusable;
    if (this.#kind !== 'request') return; // a session server's channels carry sessions only
    if (this.#limits.requestTimeout > 0) {
      this.#watchdog = new Watchdog<ConnQueue>(this.#limits.requestTimeout, {
        channels: () => this.#channels,
        drain: (channel) => this.#drain(channel),
        abandon: (channel, entry) => this.#abandon(channel, entry),
        stop: (channel) => this.#pool.terminate(channel.threadId),
      });
      this.#watchdog.start();
    }
    await this.#lane?.start(server, this.#kind);
  }

  /** A session goes to the open channel carrying the fewest; its bytes ride that channel's rings. */
  startSession(clientAddress: ClientAddress, clientId = ''): { port: SessionPort; done: Promise<void> } {
    let channel: Channel | null = null;
    for (const candidate of this.#channels) {
      if (candidate.gone) continue;
      // An open channel before an opening one (whose records wait in its ring until it opens).
      if (channel === null || (candidate.open && !channel.open) || (candidate.open === channel.open && candidate.sessionCount < channel.sessionCount)) channel = candidate;
    }
    const id = (this.#nextSessionId = (this.#nextSessionId + 1) >>> 0);
    if (channel === null) {
      const end = new ChannelSessionEnd({ sendSession() {}, forgetSession() {} }, id);
      end.fail(this.#unusable ?? new SockservError(ErrorCodes.SERVER_CLOSED, 'the server is closing'));
      end.done.catch(() => {}); // the caller's handler sees it; this copy must not be unhandled
      return { port: end, done: end.done };
    }
    const end = new ChannelSessionEnd(channel, id);
    channel.openSession(end, clientAddress, clientId);
    this.#sessions++;
    const ended = () => {
      this.#sessions--;
    };
    end.done.then(ended, ended);
    return { port: end, done: end.done };
  }

  hasCapacity(): boolean {
    return this.#scheduler.queued < this.#limits.maxQueuedRequests;
  }

  waitForCapacity(sink: RequestSink): void {
    this.#waiters.add(sink);
  }

  submit(sink: RequestSink, seq: number, request: Buffer): void {
    if (this.#unusable !== null) {
      sink.complete(seq, null, this.#unusable);
      return;
    }
    const conn = this.#scheduler.connOf(sink);
    if (this.#lane?.active && this.#scheduler.idle(conn)) {
      conn.inline++;
      this.#lane.submit(this.#inlineSink(conn), seq, request);
      return;
    }
    this.#scheduler.enqueue(conn, seq, request);
    this.#scheduleFlush();
  }

  stats(): DispatcherStats {
    let running = this.#sessions;
    const pool = { ...this.#retired };
    for (const channel of this.#channels) {
      running += channel.used;
      if (channel.phase !== 'lost') addCounters(pool, channel); // a lost one's are in #retired
    }
    const wallMs = performance.now() - this.#startedAt;
    const workers = this.#pool.workers;
    return {
      queued: this.#scheduler.queued,
      running,
      workers,
      utilization: wallMs > 0 ? Math.min(1, this.#busyMs / (wallMs * workers)) : 0,
      pool,
    };
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#watchdog?.stop();
    const loading = this.#channels.some((channel) => channel.phase === 'opening');
    for (const channel of this.#channels) channel.close();
    // Let the loops end before the threads go: piscina would otherwise receive their results after
    // it forgot the tasks, and log them as errors. A loop still loading the handler ends once
    // loaded; a worker stuck in a handler is stopped by the pool's close anyway.
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, loading ? BOOT_GRACE_MS : CLOSE_GRACE_MS)));
    await Promise.race([Promise.allSettled(this.#loops), grace]);
    clearTimeout(timer);
    if (this.#ownsPool) await this.#pool.close();
  }

  // ---- channels --------------------------------------------------------------------------

  /** Opens channel `index` on a thread no other channel of this server uses; resolves once it is open (or lost). */
  #openChannel(index: number): Promise<void> {
    const channel = new WorkerChannel<ConnQueue>(index);
    this.#channels[index] = channel;
    const avoid = new Set<number>();
    this.#channels.forEach((other, i) => {
      if (i !== index && !other.gone && this.#placedOn[i] !== undefined) avoid.add(this.#placedOn[i]!);
    });
    const task = {
      handler: this.#handler,
      server: this.#server!,
      buffers: channel.buffers,
      port: channel.workerPort,
      limits: { readHighWaterMark: this.#limits.readHighWaterMark, maxFrameBytes: this.#limits.maxFrameBytes },
      rooms: this.#rooms.workerTerms(),
    };
    let placedOn = 0;
    const loop = this.#pool.runChannel(task, [channel.workerPort], avoid, (threadId) => {
      placedOn = threadId;
      if (this.#channels[index] === channel) this.#placedOn[index] = threadId;
    });
    this.#loops.add(loop);
    loop.then(
      (outcome) => {
        this.#loops.delete(loop);
        this.#pool.channelEnded(placedOn);
        const error = (outcome as { error?: ErrorInfo } | null)?.error;
        if (error) this.#channelLost(channel, fromErrorInfo(error, ErrorCodes.HANDLER_LOAD), 'load');
        else if (channel.phase === 'closing') channel.closed();
        else this.#channelLost(channel, new Error('the channel loop ended unasked'), 'died');
      },
      (error: unknown) => {
        this.#loops.delete(loop);
        this.#pool.channelEnded(placedOn);
        this.#channelLost(channel, error, 'died');
      },
    );
    const opened = new Promise<void>((resolve) => {
      channel.onReady = () => {
        resolve();
        this.#scheduler.unpark(index);
        this.#scheduleFlush();
      };
      loop.then(
        () => resolve(),
        () => resolve(),
      );
    });
    channel.onRoom = (call, op, payload) =>
      this.#rooms.fromWorker(op, payload, call === 0 ? null : (error) => channel.ackRoom(call, error === null ? null : encodeRoomError(error)));
    channel.onBootTimeout = () =>
      this.#channelLost(channel, new SockservError(ErrorCodes.HANDLER_LOAD, 'a worker did not load the handler in time'), 'load');
    channel.waitForReplies(() => this.#onReplies(channel));
    return opened;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#closing) return;
    this.#flushScheduled = true;
    // Once per loop turn: everything framed in this poll phase is written, then published once.
    setImmediate(this.#flush);
  }

  /** The worker published outcomes (or opened). Ends when the channel is gone: waitForReplies arms nothing then. */
  #onReplies(channel: Channel): void {
    if (channel.gone) return;
    channel.checkOpen();
    this.#drain(channel);
    if (this.#scheduler.queued > 0) this.#flushQueue();
    // Sleep again only at the end of this loop turn: replies the worker publishes meanwhile are
    // drained then, with this turn's socket writes, instead of waking this thread once each.
    setImmediate(() => {
      if (channel.gone) return;
      this.#drain(channel);
      if (this.#scheduler.queued > 0) this.#flushQueue();
      channel.waitForReplies(() => this.#onReplies(channel));
    });
  }

  #drain(channel: Channel): void {
    if (channel.drain(this.#deliver) === 0) return;
    const { busyMs, done } = channel.progress();
    if (done > 0) {
      this.#busyMs += busyMs;
      this.#lane?.observePoolCost(busyMs / done);
    }
    this.#scheduler.unpark(channel.index);
  }

  readonly #deliver = (entry: Entry, kind: ReplyKind, bytes: Buffer | null, micros: number): void => {
    if (!entry.abandoned) this.#scheduler.costs.learn(entry.key, micros / 1000); // an abandoned one's record is only an acknowledgement
    this.#scheduler.settled(entry);
    const sink = entry.conn.sink;
    if (entry.abandoned || sink.closed) return;
    if (kind === Kind.REPLY) sink.complete(entry.seq, bytes);
    else if (kind === Kind.NO_REPLY) sink.complete(entry.seq, null);
    else sink.complete(entry.seq, null, fromErrorInfo(parseErrorInfo(bytes!), ErrorCodes.HANDLER_FAILED));
  };

  #flushQueue(): void {
    this.#flushScheduled = false;
    if (this.#closing) return;
    if (this.#unusable !== null) this.#failWaiting(this.#unusable);
    for (const channel of this.#channels) if (channel.open && channel.hasReplies) this.#drain(channel);
    this.#scheduler.serve(this.#channels);
    for (const channel of this.#channels) if (channel.open) channel.publish();
    if (this.#waiters.size > 0 && this.hasCapacity()) this.#wakeWaiters();
  }

  #wakeWaiters(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (let i = 0; i < waiters.length; i++) {
      const sink = waiters[i]!;
      if (!sink.closed) sink.pump();
      if (!this.hasCapacity()) {
        for (const rest of waiters.slice(i + 1)) this.#waiters.add(rest);
        return;
      }
    }
  }

  /** The sink a connection's inline runs report through: it counts them, so the pool waits for them (order). */
  #inlineSink(conn: ConnQueue): RequestSink {
    let tracked = this.#inlineSinks.get(conn);
    if (tracked === undefined) {
      const sink = conn.sink;
      tracked = {
        clientAddress: sink.clientAddress,
        clientId: sink.clientId,
        get closed() {
          return sink.closed;
        },
        complete: (seq: number, reply: Reply, error?: SockservError) => {
          conn.inline--;
          sink.complete(seq, reply, error);
          if (conn.inline === 0 && conn.inlineWait) {
            this.#scheduler.inlineEnded(conn);
            this.#scheduleFlush();
          }
        },
        pump: () => sink.pump(),
      };
      this.#inlineSinks.set(conn, tracked);
    }
    return tracked;
  }

  // ---- failures --------------------------------------------------------------------------

  /** The watchdog gave up on an async request: it fails now; the worker is told, and its acknowledgement frees the slot. */
  #abandon(channel: Channel, entry: Entry): void {
    channel.abandon(entry);
    if (!entry.conn.sink.closed) entry.conn.sink.complete(entry.seq, null, requestTimeout(this.#limits.requestTimeout, 'abandoned'));
  }

  /**
   * The channel's worker died or was stopped ('died'), or its loop could not load the handler
   * ('load'). What it published is delivered; the rest is judged by recovery.ts.
   */
  #channelLost(channel: Channel, error: unknown, how: 'died' | 'load'): void {
    if (channel.phase === 'lost' || channel.phase === 'closed') return;
    // A worker that dies before its loop opened never ran a request: it failed to start the
    // handler (an exit at import, say). Replacing it would only repeat that.
    if (how === 'died' && channel.phase === 'opening') how = 'load';
    const closing = this.#closing || channel.phase === 'closing';
    this.#drain(channel);
    channel.lose();
    addCounters(this.#retired, channel);
    const lost = channel.takeOutstanding();
    const sessions = channel.takeSessions();
    for (const entry of lost.started) this.#scheduler.settled(entry);
    for (const entry of lost.queued) this.#scheduler.settled(entry);
    if (closing) return;
    const { resend, fail } = recover(lost, {
      died: how === 'died',
      killedFor: channel.killedFor,
      idempotent: this.#idempotent,
      closed: (conn: ConnQueue) => conn.sink.closed,
    });
    // Sent again first, in each connection's order, ahead of its later requests: failing a
    // started one below may make its connection submit more.
    for (const [conn, entries] of resend) this.#scheduler.putBack(conn, entries);
    for (const { entry, cause } of fail) {
      if (!entry.conn.sink.closed) entry.conn.sink.complete(entry.seq, null, this.#failure(cause, error));
    }
    for (const end of sessions) end.fail(how === 'died' ? workerDied('session', error) : error);
    this.#scheduler.unpark(channel.index);
    if (how === 'died' && !this.#pool.closing) void this.#openChannel(channel.index);
    else if (how === 'load') {
      // The handler does not load on that worker: nothing sent there can run. The channel stays
      // lost; if none is left, what waits and what comes later fails with this error.
      this.#logger.error({ err: error }, 'a worker could not load the handler');
      if (this.#channels.every((c) => c.gone)) this.#unusable = error instanceof SockservError ? error : new SockservError(ErrorCodes.HANDLER_LOAD, String(error));
    }
    this.#scheduleFlush();
  }

  #failure(cause: LossCause, error: unknown): SockservError {
    if (cause === 'timeout') return requestTimeout(this.#limits.requestTimeout, 'stopped');
    if (cause === 'died') return workerDied('request', error);
    return error instanceof SockservError ? error : new SockservError(ErrorCodes.HANDLER_LOAD, String(error));
  }

  /** No channel can run the handler: every request waiting here fails with `error`. */
  #failWaiting(error: SockservError): void {
    for (const entry of this.#scheduler.takeAll()) if (!entry.conn.sink.closed) entry.conn.sink.complete(entry.seq, null, error);
  }
}

function addCounters(into: PoolCounters, channel: Channel): void {
  const times = channel.threadTimes;
  const wakes = channel.wakeCounts;
  into.workerBusyMs += times.busyMs;
  into.workerIdleMs += times.idleMs;
  into.wakesToMain += wakes.toMain;
  into.wakesToWorker += wakes.toWorker;
  into.missedWakes += wakes.missed;
}

/** An ERROR outcome's payload; a worker always sends valid JSON, but a bad one must not throw here. */
function parseErrorInfo(bytes: Buffer): ErrorInfo {
  try {
    return JSON.parse(bytes.toString()) as ErrorInfo;
  } catch {
    return { name: 'Error', message: 'a handler failed (its error could not be read)' };
  }
}
