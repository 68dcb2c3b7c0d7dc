// Owns one stress run from options to result: opens the connections, starts the clock once every
// first connection attempt has settled (so connect time is not measured), drives the load pattern,
// sweeps timeouts, reports progress and ends. A run always ends by itself: when the request budget
// is sent or the duration is over and every outstanding request has an outcome (a reply, an error,
// or its timeout), when no connection is left (each connection reconnects after losing an open
// socket, but a failed connection attempt retires it), or when the signal aborts.
// With newConnection the connections are one-shot slots that connect per request: there is no
// connecting phase, the clock starts at once and every connect is part of a measured request.

import { ClientConnection, type ConnectionConfig, type ConnectionOwner } from './client-connection.js';
import { ClosedLoop, type LoadPattern, OpenLoop } from './load-pattern.js';
import {
  type ProgressSample,
  type ResolvedStressOptions,
  type StressOptions,
  type StressResult,
  resolveStressOptions,
} from './options.js';
import { Recorder } from './recorder.js';
import { RequestSchedule } from './request-schedule.js';

/** Sends load as `options` say and resolves with what was measured (also when aborted). */
export function runStress(options: StressOptions): Promise<StressResult> {
  let resolved: ResolvedStressOptions;
  let schedule: RequestSchedule;
  try {
    resolved = resolveStressOptions(options);
    schedule = new RequestSchedule(resolved.mix ?? [{ payload: resolved.payload, weight: 1 }], resolved.framing, resolved.pipeline);
  } catch (error) {
    return Promise.reject(error);
  }
  return new StressRun(resolved, schedule).run();
}

type Phase = 'connecting' | 'running' | 'draining' | 'done';

class StressRun implements ConnectionOwner {
  readonly recorder: Recorder;
  readonly #options: ResolvedStressOptions;
  readonly #schedule: RequestSchedule;
  readonly #pattern: LoadPattern;
  readonly #connections: ClientConnection[] = [];
  #phase: Phase = 'connecting';
  /** Connections whose first attempt has not settled yet; the load starts when none is left. */
  readonly #awaiting = new Set<ClientConnection>();
  #loadStart = 0;
  #ticker: NodeJS.Timeout | undefined;
  /** End of the measured window (Infinity for a request-bounded run). */
  #deadline = Infinity;
  #nextProgressAt = Infinity;
  /** The previous progress sample's time and reply count, for its rate. */
  #progressAt = 0;
  #progressReplies = 0;
  #settle: (outcome: { result: StressResult } | { error: unknown }) => void = () => {};

  constructor(options: ResolvedStressOptions, schedule: RequestSchedule) {
    this.#options = options;
    this.#schedule = schedule;
    this.recorder = new Recorder(options.mix);
    this.#pattern = options.rate === undefined ? new ClosedLoop() : new OpenLoop(options.rate);
  }

  run(): Promise<StressResult> {
    return new Promise<StressResult>((resolve, reject) => {
      this.#settle = (outcome) => ('result' in outcome ? resolve(outcome.result) : reject(outcome.error));
      const options = this.#options;
      if (options.signal?.aborted) {
        this.#finish(performance.now());
        return;
      }
      options.signal?.addEventListener('abort', this.#onAbort, { once: true });
      const config: ConnectionConfig = {
        host: options.host,
        port: options.port,
        framing: options.framing,
        schedule: this.#schedule,
        pipeline: options.pipeline,
        expectReply: options.expectReply,
        oneShot: options.newConnection,
      };
      const tickMs = Math.min(50, Math.max(5, options.timeoutMs / 4));
      this.#ticker = setInterval(this.#tick, tickMs);
      const now = performance.now();
      for (let i = 0; i < options.connections; i++) this.#connections.push(new ClientConnection(config, this));
      if (options.newConnection) {
        this.#begin(now);
        return;
      }
      for (const connection of this.#connections) this.#awaiting.add(connection);
      for (const connection of this.#connections) connection.connect(now);
    });
  }

  opened(connection: ClientConnection, now: number): void {
    if (this.#phase === 'connecting') {
      this.#settledFirstAttempt(connection, now);
    } else if (this.#phase === 'running') {
      this.#pattern.fill(connection, now);
    } else if (this.#phase === 'draining') {
      this.#finishIfSettled(now);
    }
  }

  fill(connection: ClientConnection, now: number): void {
    if (this.#phase === 'running') this.#pattern.fill(connection, now);
    else if (this.#phase === 'draining') this.#finishIfSettled(now);
  }

  closed(connection: ClientConnection, wasOpen: boolean, now: number): void {
    if (this.#phase === 'done') return;
    if (this.#options.newConnection) {
      // A slot whose socket broke is free for the next request; a failed connect retired it.
      if (wasOpen && this.#phase === 'running') this.#pattern.fill(connection, now);
      else this.#finishIfSettled(now);
      return;
    }
    if (!wasOpen) {
      // A failed attempt retires the connection: nothing listens, or it is unreachable.
      if (this.#phase === 'connecting') {
        this.#settledFirstAttempt(connection, now);
        return;
      }
    } else if (this.#phase === 'connecting' || this.#phase === 'running') {
      connection.connect(now);
      return;
    }
    this.#finishIfSettled(now);
  }

  #settledFirstAttempt(connection: ClientConnection, now: number): void {
    if (this.#awaiting.delete(connection) && this.#awaiting.size === 0) this.#begin(now);
  }

  /** Every first attempt has settled: start the clock and the load. */
  #begin(now: number): void {
    this.#phase = 'running';
    const options = this.#options;
    this.#loadStart = now;
    this.#progressAt = now;
    this.#nextProgressAt = now + 1000;
    const measureStart = now + options.warmupMs;
    const deadline = measureStart + options.durationMs;
    this.#deadline = deadline;
    this.recorder.start(measureStart, deadline);
    this.#pattern.start(now, { measureStart, deadline, requests: options.requests }, this.#connections, this.#onStop);
    this.#finishIfSettled(now);
  }

  /** The pattern sends nothing more: wait for the outstanding requests. */
  #onStop = (): void => {
    if (this.#phase !== 'running') return;
    this.#phase = 'draining';
    this.#finishIfSettled(performance.now());
  };

  /** Ends the run when nothing more can happen: drained, or no connection left. */
  #finishIfSettled(now: number): void {
    if (this.#phase === 'done' || this.#phase === 'connecting') return;
    let alive = false;
    for (const connection of this.#connections) {
      if (connection.inFlight > 0) return;
      if (connection.alive) alive = true;
    }
    if (this.#phase === 'draining' || !alive) this.#finish(now);
  }

  #tick = (): void => {
    const now = performance.now();
    const options = this.#options;
    this.recorder.advance(now);
    // The patterns stop at the deadline themselves when they send; this covers a stalled run.
    if (now >= this.#deadline) this.#pattern.stop();
    for (const connection of this.#connections) {
      if (this.#phase === 'done') return;
      connection.expire(now, options.timeoutMs);
    }
    if (options.onProgress && now >= this.#nextProgressAt && (this.#phase === 'running' || this.#phase === 'draining')) {
      this.#nextProgressAt += 1000 * Math.max(1, Math.ceil((now - this.#nextProgressAt) / 1000));
      try {
        options.onProgress(this.#sample(now));
      } catch (error) {
        this.#finish(now, error);
      }
    }
  };

  #sample(now: number): ProgressSample {
    const recorder = this.recorder;
    let inFlight = 0;
    let open = 0;
    for (const connection of this.#connections) {
      inFlight += connection.inFlight;
      if (connection.isOpen) open++;
    }
    const rps = ((recorder.allReplies - this.#progressReplies) * 1000) / Math.max(1, now - this.#progressAt);
    this.#progressReplies = recorder.allReplies;
    this.#progressAt = now;
    return {
      phase: now < recorder.measureStart ? 'warmup' : this.#phase === 'draining' ? 'drain' : 'measure',
      elapsedSec: (now - this.#loadStart) / 1000,
      requests: recorder.requests,
      rps,
      p99Ms: recorder.lastSecondP99Ms,
      errors: recorder.errorCount,
      inFlight,
      connections: open,
    };
  }

  #onAbort = (): void => this.#finish(performance.now());

  #finish(now: number, error?: unknown): void {
    if (this.#phase === 'done') return;
    this.#phase = 'done';
    clearInterval(this.#ticker);
    this.#pattern.stop();
    this.#options.signal?.removeEventListener('abort', this.#onAbort);
    for (const connection of this.#connections) connection.destroy();
    if (error !== undefined) {
      this.#settle({ error });
      return;
    }
    const result = this.recorder.finish(now);
    if (this.#options.newConnection) result.connectionsPerSec = result.rps;
    this.#settle({ result });
  }
}
