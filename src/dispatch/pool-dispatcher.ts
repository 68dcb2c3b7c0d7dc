// Owns pooled dispatch (ThreadingTCPServer): the Dispatcher facade over the set of worker
// channels. It opens a channel per worker, feeds the scheduler's choices into them, delivers
// outcomes to connections, and when a channel is lost applies recovery (recovery.ts) and opens a
// replacement. The rules live one per file:
//
//   scheduler.ts      which request goes where, and when (order, cheap first, metering)
//   worker-channel.ts one channel's life and its shared memory (slots, rings, doorbell)
//   recovery.ts       what a lost channel's requests become (at most once)
//   watchdog.ts       requestTimeout
//   handler-version.ts one version of the handler: its pool, its channels, its life
//   reload.ts         the order of a reload, and the old version's timeline
//
// Invariants held here: a replacement channel lives on a thread that no other channel of this
// server uses (it is placed only on a thread outside theirs, so it waits for the replacement worker
// to be ready rather than landing on a survivor). When no channel can ever run the handler again
// (every one lost to a load failure), waiting and later requests and sessions fail at once with
// that error. close() always finishes: channels are told to end, loops still loading the handler
// are waited for (a thread terminated inside module loading can abort the process), bounded.
// Reloads: exactly one version serves (the scheduler picks only among its channels, sessions start
// only there); older ones drain — a connection's requests on them are answered there, its next
// ones wait for that and then go to the serving version — and retire once they carry nothing. A
// draining version's channels are never replaced: a death there fails only the requests that had
// started; the ones it had not started run on the serving version. A channel index (the
// scheduler's key for parking) names one live channel; a retired channel's index is reused.
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
import { HOLD_CHECK_MS, HOLD_QUEUED, Kind } from './channel-protocol.js';
import type { Dispatcher, DispatcherStats, RequestSink, SessionOwner } from './dispatcher.js';
import { HandlerVersion } from './handler-version.js';
import { InlineLane } from './inline-lane.js';
import { type LossCause, recover } from './recovery.js';
import { Reloader } from './reload.js';
import { type ConnQueue, type Entry, Scheduler } from './scheduler.js';
import { ChannelSessionEnd, type SessionPort } from './session-port.js';
import { Watchdog } from './watchdog.js';
import { type ReplyKind, WorkerChannel } from './worker-channel.js';
import type { WorkerPool } from './worker-pool.js';

type Limits = Pick<
  ResolvedOptions,
  'maxQueuedRequests' | 'requestTimeout' | 'workerQueueMs' | 'pipelining' | 'readHighWaterMark' | 'maxFrameBytes' | 'reloadTimeout' | 'shutdownTimeout'
>;
type Channel = WorkerChannel<ConnQueue>;
type Version = HandlerVersion<ConnQueue>;

/** How long close() waits for running channel loops to end before the pool stops their threads. */
const CLOSE_GRACE_MS = 1000;
/** How long close() waits for a loop still loading the handler (never terminate a thread inside module loading). */
const BOOT_GRACE_MS = 10_000;

export class PoolDispatcher implements Dispatcher {
  readonly #limits: Limits;
  readonly #logger: Logger;
  readonly #rooms: RoomRegistry;
  readonly #scheduler: Scheduler;
  /** Makes the pool of a reload's new version; null when the server runs on a shared pool (no reload). */
  readonly #newPool: (() => WorkerPool) | null;
  readonly #reloader: Reloader<ConnQueue>;
  #server: ServerInfo | undefined;
  #kind: HandlerKind = 'request';
  /** The version that serves: the scheduler picks among its channels, sessions start there. */
  #current: Version;
  /** Every version still running: the serving one, older ones draining, a reload's starting one. */
  readonly #versions = new Set<Version>();
  /** The version of each channel (the watchdog stops a thread through its version's pool). */
  readonly #versionOf = new WeakMap<Channel, Version>();
  /** The channels of every running version (lost ones until replaced or retired): what is drained, published, scanned. */
  #channels: Channel[] = [];
  /** Channel indices free for reuse (a retired version's), and the next never used. */
  readonly #freeIndices: number[] = [];
  #nextIndex = 0;
  /** Pools of retired versions still closing (close() waits for them). */
  readonly #retiring = new Set<Promise<void>>();
  #sessions = 0;
  /** Each session's connection, told to drain when its version's reloadTimeout passes. */
  readonly #owners = new WeakMap<ChannelSessionEnd, SessionOwner>();
  #nextSessionId = 0;
  #waiters = new Set<RequestSink>();
  #flushScheduled = false;
  /** The hold check's timer while armed (#armHoldCheck). */
  #holdCheck: NodeJS.Timeout | undefined;
  /** A flush at the next suspicion expiry while the bulkhead holds connections back (#armExpiry). */
  #expiry: NodeJS.Timeout | undefined;
  #busyMs = 0;
  readonly #startedAt = performance.now();
  #watchdog: Watchdog<ConnQueue> | null = null;
  #closing = false;
  /** Every channel of the serving version was lost to a load failure: no request can run any more; this is why. */
  #unusable: SockservError | null = null;
  readonly #flush = () => this.#flushQueue();
  /** Runs cheap requests on the main thread when inlineBelowMicros is set; null otherwise. */
  readonly #lane: InlineLane | null;
  /** The accounts of channels that are gone (stats() adds the live ones'). */
  readonly #retired: PoolCounters = { workerBusyMs: 0, workerIdleMs: 0, wakesToMain: 0, wakesToWorker: 0, missedWakes: 0, workerTids: [], suspectKinds: 0 };
  /** Per connection, the sink its inline runs report through (it counts them). */
  readonly #inlineSinks = new WeakMap<ConnQueue, RequestSink>();

  /**
   * `pool` runs the first version (the server's own when `ownsPool`); `newPool` makes the pool of
   * each reload's version, or is null when the pool is shared (reload() then rejects).
   */
  constructor(
    pool: WorkerPool,
    ownsPool: boolean,
    handler: HandlerRef,
    options: ResolvedOptions,
    logger: Logger,
    rooms: RoomRegistry,
    newPool: (() => WorkerPool) | null = null,
  ) {
    this.#current = new HandlerVersion<ConnQueue>(handler, pool, ownsPool);
    this.#current.number = 1;
    this.#current.state = 'serving';
    this.#versions.add(this.#current);
    this.#newPool = newPool;
    this.#limits = options;
    this.#logger = logger;
    this.#rooms = rooms;
    this.#scheduler = new Scheduler(options.pipelining !== 'parallel', options.workerQueueMs);
    this.#lane = options.inlineBelowMicros > 0 ? new InlineLane(handler, options, logger, rooms) : null;
    this.#reloader = this.#makeReloader();
  }

  get handlerKind(): HandlerKind {
    return this.#kind;
  }

  async start(server: ServerInfo): Promise<void> {
    this.#server = server;
    const version = this.#current;
    const loaded = await version.pool.preload(version.handler);
    this.#kind = loaded.kind;
    version.idempotent = loaded.idempotent;
    await this.#openChannels(version);
    if (this.#unusable) throw this.#unusable;
    if (this.#kind !== 'request') return; // a session server's channels carry sessions only
    if (this.#limits.requestTimeout > 0) {
      this.#watchdog = new Watchdog<ConnQueue>(this.#limits.requestTimeout, {
        channels: () => this.#channels,
        drain: (channel) => this.#drain(channel),
        abandon: (channel, entry) => this.#abandon(channel, entry),
        stop: (channel, why) => {
          if (why === 'stalled') {
            this.#logger.warn(
              { code: ErrorCodes.REQUEST_TIMEOUT, threadId: channel.threadId },
              `a worker's event loop did not turn for requestTimeout (${this.#limits.requestTimeout} ms) outside any handler run (a blocking async continuation?): stopping it`,
            );
          }
          return this.#versionOf.get(channel)?.pool.terminate(channel.threadId) ?? false;
        },
      });
      this.#watchdog.start();
    }
    await this.#lane?.start(server, this.#kind);
  }

  /**
   * Loads `handler` (default: the serving version's module, read again) in a new pool's fresh
   * threads and switches to it (reload.ts). Resolves once the new version serves.
   */
  reload(handler?: HandlerRef): Promise<{ version: number }> {
    return this.#reloader.reload(handler);
  }

  /** A session goes to the serving version's open channel carrying the fewest; its bytes ride that channel's rings. */
  startSession(clientAddress: ClientAddress, owner?: SessionOwner, clientId = ''): { port: SessionPort; done: Promise<void> } {
    let channel: Channel | null = null;
    for (const candidate of this.#current.channels) {
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
    const version = this.#current;
    const end = new ChannelSessionEnd(channel, id);
    if (owner !== undefined) this.#owners.set(end, owner);
    channel.openSession(end, clientAddress, clientId);
    this.#sessions++;
    const ended = () => {
      this.#sessions--;
      if (version.state === 'draining') this.#checkRetired(version);
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
    if (this.#lane?.active && this.#scheduler.idle(conn) && !this.#scheduler.suspectRequest(request)) {
      conn.inline++;
      this.#lane.submit(this.#inlineSink(conn), seq, request);
      return;
    }
    this.#scheduler.enqueue(conn, seq, request);
    this.#scheduleFlush();
  }

  stats(): DispatcherStats {
    let running = this.#sessions;
    const pool = { ...this.#retired, workerTids: [] as number[], suspectKinds: this.#scheduler.suspects.count(Date.now()) };
    for (const channel of this.#channels) {
      running += channel.used;
      if (channel.phase === 'lost') continue; // its accounts are in #retired
      addCounters(pool, channel);
      if (channel.osThreadId > 0) pool.workerTids.push(channel.osThreadId);
    }
    const wallMs = performance.now() - this.#startedAt;
    const workers = this.#current.pool.workers;
    return {
      queued: this.#scheduler.queued,
      running,
      workers,
      utilization: wallMs > 0 ? Math.min(1, this.#busyMs / (wallMs * workers)) : 0,
      pool,
      handlerVersion: this.#current.number,
    };
  }

  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    clearTimeout(this.#holdCheck);
    this.#holdCheck = undefined;
    clearTimeout(this.#expiry);
    this.#expiry = undefined;
    this.#watchdog?.stop();
    const versions = [...this.#versions];
    for (const version of versions) version.clearTimers();
    const loading = this.#channels.some((channel) => channel.phase === 'opening');
    for (const channel of this.#channels) channel.close();
    // Let the loops end before the threads go: piscina would otherwise receive their results after
    // it forgot the tasks, and log them as errors. A loop still loading the handler ends once
    // loaded; a worker stuck in a handler is stopped by the pool's close anyway.
    await settleWithin(versions.flatMap((version) => [...version.loops]), loading ? BOOT_GRACE_MS : CLOSE_GRACE_MS);
    await Promise.all([...versions.filter((version) => version.ownsPool).map((version) => version.pool.close()), ...this.#retiring]);
  }

  // ---- channels --------------------------------------------------------------------------

  /** Opens one channel per worker of the version's pool; resolves once each is open (or lost). */
  #openChannels(version: Version): Promise<void> {
    const opened: Array<Promise<void>> = [];
    for (let slot = 0; slot < version.pool.workers; slot++) opened.push(this.#openChannel(version, slot, this.#takeIndex()));
    return Promise.all(opened).then(() => {});
  }

  /**
   * Opens the channel of `slot` of `version` (under channel index `index`) on a thread no other
   * channel of that version uses; resolves once it is open (or lost).
   */
  #openChannel(version: Version, slot: number, index: number): Promise<void> {
    const channel = new WorkerChannel<ConnQueue>(index);
    const replaced = version.channels[slot];
    version.channels[slot] = channel;
    this.#versionOf.set(channel, version);
    this.#channels = replaced === undefined ? [...this.#channels, channel] : this.#channels.map((c) => (c === replaced ? channel : c));
    const avoid = new Set<number>();
    version.channels.forEach((other, i) => {
      if (i !== slot && !other.gone && version.placedOn[i] !== undefined) avoid.add(version.placedOn[i]!);
    });
    const task = {
      handler: version.handler,
      server: this.#server!,
      buffers: channel.buffers,
      port: channel.workerPort,
      limits: { readHighWaterMark: this.#limits.readHighWaterMark, maxFrameBytes: this.#limits.maxFrameBytes },
      rooms: this.#rooms.workerTerms(),
    };
    let placedOn = 0;
    const loop = version.pool.runChannel(task, [channel.workerPort], avoid, (threadId) => {
      placedOn = threadId;
      if (version.channels[slot] === channel) version.placedOn[slot] = threadId;
    });
    version.loops.add(loop);
    loop.then(
      (outcome) => {
        version.loops.delete(loop);
        version.pool.channelEnded(placedOn);
        const error = (outcome as { error?: ErrorInfo } | null)?.error;
        if (error) this.#channelLost(version, channel, fromErrorInfo(error, ErrorCodes.HANDLER_LOAD), 'load');
        else if (channel.phase === 'closing') channel.closed();
        else this.#channelLost(version, channel, new Error('the channel loop ended unasked'), 'died');
        this.#checkRetired(version);
      },
      (error: unknown) => {
        version.loops.delete(loop);
        version.pool.channelEnded(placedOn);
        this.#channelLost(version, channel, error, 'died');
        this.#checkRetired(version);
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
      this.#channelLost(version, channel, new SockservError(ErrorCodes.HANDLER_LOAD, 'a worker did not load the handler in time'), 'load');
    channel.waitForReplies(() => this.#onReplies(channel));
    return opened;
  }

  #takeIndex(): number {
    return this.#freeIndices.pop() ?? this.#nextIndex++;
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
    if (this.#scheduler.queued > 0) this.#flushQueue(); // it drains every channel first
    else {
      this.#drainPublished(); // awake anyway: outcomes other workers published and hold the wake for go too
      this.#armHoldCheck();
    }
    // Sleep again only at the end of this loop turn: replies the worker publishes meanwhile are
    // drained then, with this turn's socket writes, instead of waking this thread once each.
    setImmediate(() => {
      if (channel.gone) return;
      this.#drain(channel);
      if (this.#scheduler.queued > 0) this.#flushQueue();
      channel.waitForReplies(() => this.#onReplies(channel));
    });
  }

  /** Delivers what any running channel has published, rung or not. */
  #drainPublished(): void {
    for (const channel of this.#channels) if (channel.running && channel.hasReplies) this.#drain(channel);
  }

  /**
   * While a channel carries enough for its worker to hold a wake (workers/outcome-writer.ts), the
   * rings are read from here every HOLD_CHECK_MS: a run that overruns its SHORT prediction delays
   * a held reply by at most that. Armed after every flush and wake; what ends it: no channel
   * carries that much any more (it is not armed again), or close() (cleared, and #closing).
   */
  #armHoldCheck(): void {
    if (this.#holdCheck !== undefined || this.#closing) return;
    for (const channel of this.#channels) {
      // A hold needs HOLD_QUEUED requests behind the run it is held over, none of them finished.
      if (channel.running && channel.queued > HOLD_QUEUED) {
        this.#holdCheck = setTimeout(this.#checkHolds, HOLD_CHECK_MS);
        return;
      }
    }
  }

  readonly #checkHolds = (): void => {
    this.#holdCheck = undefined;
    if (this.#closing) return;
    this.#drainPublished();
    if (this.#scheduler.queued > 0) this.#flushQueue();
    else this.#armHoldCheck();
  };

  #drain(channel: Channel): void {
    if (channel.drain(this.#deliver) === 0) return;
    const { busyMs, done } = channel.progress();
    if (done > 0) {
      this.#busyMs += busyMs;
      this.#lane?.observePoolCost(busyMs / done);
    }
    this.#scheduler.unpark(channel.index);
    // A reload's old version: its channel closes once it carries nothing.
    if (channel.phase === 'draining' && channel.used === 0 && channel.sessionCount === 0) this.#checkRetired(this.#versionOf.get(channel)!);
  }

  readonly #deliver = (entry: Entry, kind: ReplyKind, bytes: Buffer | null, micros: number): void => {
    if (!entry.abandoned) this.#scheduler.costs.learn(entry.key, micros / 1000); // an abandoned one's record is only an acknowledgement
    this.#scheduler.settled(entry, !entry.abandoned);
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
    for (const channel of this.#channels) if (channel.running && channel.hasReplies) this.#drain(channel);
    this.#scheduler.steal(this.#current.channels, Date.now);
    this.#scheduler.serve(this.#current.channels);
    for (const channel of this.#channels) if (channel.running) channel.publish();
    if (this.#waiters.size > 0 && this.hasCapacity()) this.#wakeWaiters();
    this.#armHoldCheck();
    this.#armExpiry();
  }

  /**
   * While the bulkhead holds connections back, a flush at the next suspicion expiry judges them
   * again (an expiry is no event of its own). Ends: it fires once; a flush re-arms it only while
   * some are still held back; close() clears it.
   */
  #armExpiry(): void {
    if (this.#expiry !== undefined || this.#closing) return;
    const until = this.#scheduler.heldBackUntil;
    if (until === 0) return;
    this.#expiry = setTimeout(this.#expired, Math.max(1, until - Date.now() + 1));
  }

  readonly #expired = (): void => {
    this.#expiry = undefined;
    if (!this.#closing) this.#flushQueue();
  };

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

  // ---- reloads (the order is reload.ts's) ------------------------------------------------

  #makeReloader(): Reloader<ConnQueue> {
    const self = this; // the host's getters read this dispatcher's private fields
    return new Reloader<ConnQueue>(
      {
        get closing() {
          return self.#closing;
        },
        get kind() {
          return self.#kind;
        },
        get handler() {
          return self.#current.handler;
        },
        newVersion: (handler) => {
          if (this.#newPool === null) return null;
          const version = new HandlerVersion<ConnQueue>(handler, this.#newPool(), true);
          this.#versions.add(version); // close() closes it too
          return version;
        },
        openChannels: (version) => this.#openChannels(version),
        switchTo: (version) => this.#switchTo(version),
        discard: (version) => this.#discard(version),
        drainSessions: (version) => this.#drainSessions(version),
        cut: (version) => this.#cut(version),
      },
      { reloadTimeout: this.#limits.reloadTimeout, shutdownTimeout: this.#limits.shutdownTimeout },
    );
  }

  /** The switch, in one step: `version` serves from now on; the one before drains. */
  #switchTo(version: Version): Version {
    const old = this.#current;
    version.number = old.number + 1;
    version.state = 'serving';
    this.#current = version;
    old.state = 'draining';
    for (const channel of old.channels) channel.beginDraining();
    this.#unusable = null; // the new version loads, whatever the old one did
    this.#lane?.retire();
    this.#scheduler.suspects.clearAll(); // the new code may not kill where the old one did
    // Connections parked on an old channel for room go to the new version now; one with requests
    // outstanding there parks again until they are answered (the scheduler's order rule).
    for (const channel of old.channels) this.#scheduler.unpark(channel.index);
    this.#checkRetired(old);
    this.#scheduleFlush();
    return old;
  }

  /**
   * A draining version: closes each channel that carries nothing any more, and once every one has
   * ended, retires the version — its pool closes, its channel indices are free again.
   */
  #checkRetired(version: Version): void {
    if (this.#closing || version.state !== 'draining') return;
    for (const channel of version.channels) {
      if ((channel.phase === 'draining' || channel.phase === 'opening') && channel.used === 0 && channel.sessionCount === 0) channel.close();
    }
    if (!version.finished) return;
    version.state = 'retired';
    this.#forget(version);
    if (version.ownsPool) {
      const closed = version.pool.close().catch((err: unknown) => this.#logger.debug({ err }, 'an old version\'s pool failed to close'));
      this.#retiring.add(closed);
      void closed.then(() => this.#retiring.delete(closed));
    }
  }

  /** A reload that failed: its channels close, then its pool. */
  async #discard(version: Version): Promise<void> {
    const loading = version.channels.some((channel) => channel.phase === 'opening');
    for (const channel of version.channels) channel.close();
    await settleWithin([...version.loops], loading ? BOOT_GRACE_MS : CLOSE_GRACE_MS);
    this.#forget(version);
    await version.pool.close();
  }

  /** Drops a version that ran its last: its channels leave the sets, their indices are free. */
  #forget(version: Version): void {
    version.clearTimers();
    if (!this.#versions.delete(version)) return;
    const ended = new Set(version.channels);
    this.#channels = this.#channels.filter((channel) => !ended.has(channel));
    for (const channel of version.channels) {
      if (channel.phase !== 'lost') addCounters(this.#retired, channel); // a lost one's are in already
      this.#scheduler.unpark(channel.index); // nothing waits there; keeps the reused index clean
      this.#freeIndices.push(channel.index);
    }
  }

  /** reloadTimeout passed: the old version's sessions get EOF, as in a shutdown. */
  #drainSessions(version: Version): void {
    let sessions = 0;
    for (const channel of version.channels) {
      for (const end of channel.sessionEnds()) {
        sessions++;
        this.#owners.get(end)?.drain();
      }
    }
    if (sessions > 0) {
      this.#logger.info(
        { version: version.number, sessions, reloadTimeout: this.#limits.reloadTimeout },
        `reload: ${sessions} session${sessions === 1 ? '' : 's'} of handler version ${version.number} still open after reloadTimeout: ending their input, as in a shutdown`,
      );
    }
  }

  /** reloadTimeout + shutdownTimeout passed: what still runs on the old version is stopped (ERR_RELOAD_TIMEOUT). */
  #cut(version: Version): void {
    version.cut = true;
    this.#logger.warn(
      { code: ErrorCodes.RELOAD_TIMEOUT, version: version.number, carried: version.carried },
      `reload: handler version ${version.number} still runs requests or sessions after reloadTimeout + shutdownTimeout: stopping its workers`,
    );
    for (const channel of version.channels) {
      if (channel.running) {
        if (!version.pool.terminate(channel.threadId)) this.#channelLost(version, channel, new Error('its worker is gone'), 'died');
      } else if (channel.phase === 'opening') {
        channel.close();
        for (const end of channel.takeSessions()) end.fail(this.#reloadCut());
      }
    }
    this.#checkRetired(version);
  }

  #reloadCut(): SockservError {
    return new SockservError(
      ErrorCodes.RELOAD_TIMEOUT,
      `still running on the old handler version ${this.#limits.reloadTimeout + this.#limits.shutdownTimeout} ms after a reload (reloadTimeout + shutdownTimeout): stopped`,
    );
  }

  // ---- failures --------------------------------------------------------------------------

  /** The watchdog gave up on an async request: it fails now; the worker is told, and its acknowledgement frees the slot. */
  #abandon(channel: Channel, entry: Entry): void {
    channel.abandon(entry);
    if (!entry.conn.sink.closed) entry.conn.sink.complete(entry.seq, null, requestTimeout(this.#limits.requestTimeout, 'abandoned'));
  }

  /**
   * The channel's worker died or was stopped ('died'), or its loop could not load the handler
   * ('load'). What it published is delivered; the rest is judged by recovery.ts. Only the serving
   * version replaces a channel; a starting one (a reload) records why it cannot serve.
   */
  #channelLost(version: Version, channel: Channel, error: unknown, how: 'died' | 'load'): void {
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
    if (how === 'died' && version.state === 'serving' && !version.cut) this.#blame(channel, lost.started);
    for (const entry of lost.started) this.#scheduler.settled(entry, false);
    for (const entry of lost.queued) this.#scheduler.settled(entry, false);
    if (closing) {
      for (const end of sessions) end.fail(new SockservError(ErrorCodes.SERVER_CLOSED, 'the server closed while this session ran'));
      return;
    }
    const { resend, fail } = recover(lost, {
      died: how === 'died',
      killedFor: channel.killedFor,
      idempotent: version.idempotent,
      closed: (conn: ConnQueue) => conn.sink.closed,
    });
    // Sent again first, in each connection's order, ahead of its later requests: failing a
    // started one below may make its connection submit more. A draining version's go to the
    // serving version (the scheduler picks only among its channels).
    for (const [conn, entries] of resend) this.#scheduler.putBack(conn, entries);
    for (const { entry, cause } of fail) {
      if (!entry.conn.sink.closed) entry.conn.sink.complete(entry.seq, null, this.#failure(cause, error, version));
    }
    for (const end of sessions) end.fail(version.cut ? this.#reloadCut() : how === 'died' ? workerDied('session', error) : error);
    this.#scheduler.unpark(channel.index);
    if (version.state === 'starting') {
      // A reload's new version: it will not serve (reload.ts rejects with this and discards it).
      version.loadError ??= how === 'died' ? workerDied('request', error) : error;
    } else if (version.state === 'serving') {
      const slot = version.channels.indexOf(channel);
      if (how === 'died' && !version.pool.closing) void this.#openChannel(version, slot, channel.index);
      else if (how === 'load') {
        // The handler does not load on that worker: nothing sent there can run. The channel stays
        // lost; if none is left, what waits and what comes later fails with this error.
        this.#logger.error({ err: error }, 'a worker could not load the handler');
        if (version.channels.every((c) => c.gone)) this.#unusable = error instanceof SockservError ? error : new SockservError(ErrorCodes.HANDLER_LOAD, String(error));
      }
    }
    this.#scheduleFlush();
  }

  /**
   * The request that killed a worker — the one the watchdog stopped it for, or the one running
   * synchronously when it died — makes its kind suspect (the bulkhead, scheduler.ts). A death with
   * no synchronous run (an async handler's heap while nothing ran, a stop for a stalled loop) blames
   * no one: which of the awaiting requests did it is not known. A heap that awaiting handlers filled
   * and another request's synchronous run tipped over blames that run: a wrong blame costs its kind
   * only parallelism, until one of its requests completes.
   */
  #blame(channel: Channel, started: ReadonlyArray<Entry>): void {
    const culprit = channel.killedFor !== 0 ? channel.killedFor : channel.runningRef;
    if (culprit === 0) return;
    const entry = started.find((e) => e.ref === culprit);
    if (entry !== undefined) this.#scheduler.blame(entry, Date.now());
  }

  #failure(cause: LossCause, error: unknown, version: Version): SockservError {
    if (version.cut && cause !== 'load') return this.#reloadCut();
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

/** Waits for `loops` to settle, at most `ms`. */
async function settleWithin(loops: Array<Promise<unknown>>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
  await Promise.race([Promise.allSettled(loops), grace]);
  clearTimeout(timer);
}

/** An ERROR outcome's payload; a worker always sends valid JSON, but a bad one must not throw here. */
function parseErrorInfo(bytes: Buffer): ErrorInfo {
  try {
    return JSON.parse(bytes.toString()) as ErrorInfo;
  } catch {
    return { name: 'Error', message: 'a handler failed (its error could not be read)' };
  }
}
