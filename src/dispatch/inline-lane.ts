// Owns the inline lane of a pooled server (option inlineBelowMicros; off by default). A trivial
// handler costs less on the main thread than the trip to a worker, so while the measured cost of
// a request stays under the threshold, requests run right where they were framed. Every inline
// run is timed; runs that take long — or an average that creeps up — send requests back to the
// pool at once, for a cooldown that doubles each time (1 s up to 60 s).
//
// The price of the speed: a request that runs inline is not isolated. A handler that can exit
// the process, loop, or block for long must not use this option — which is why it is opt-in.
// A reload retires the lane for good (retire()): the main thread cannot load a new version of a
// module it imported, so from the switch on every request uses the pool; runs already started
// finish on the old version, as in-flight requests do on old workers.

import { performance } from 'node:perf_hooks';
import type { HandlerKind, ServerInfo } from '../handler.js';
import type { HandlerRef } from '../handler-module.js';
import type { Logger } from '../logger.js';
import type { ResolvedOptions } from '../options.js';
import type { RoomAccess } from '../rooms/access.js';
import type { RequestSink } from './dispatcher.js';
import { InlineDispatcher } from './inline.js';

/** Pool batches whose cost must be under the threshold before requests move inline. */
const CALM_BATCHES = 8;
const SMOOTHING = 0.01;
/** Inline runs right after switching are not averaged: first calls on a fresh thread are slow (JIT). */
const WARMUP_RUNS = 64;
const FIRST_COOLDOWN_MS = 1000;
const MAX_COOLDOWN_MS = 60_000;
const STALL_FLOOR_MS = 5;
const WARMUP_STALL_MS = 20;
const STALL_WINDOW = 1000;
const STALLS_TO_TRIP = 3;

export class InlineLane {
  readonly #inline: InlineDispatcher;
  readonly #thresholdMs: number;
  readonly #stallMs: number;
  readonly #logger: Logger;
  #usable = false;
  #active = false;
  #calmBatches = 0;
  #runs = 0;
  #stalls = 0;
  #costMs = 0;
  #cooldownUntil = 0;
  #cooldownMs = FIRST_COOLDOWN_MS;

  constructor(handler: HandlerRef, options: ResolvedOptions, logger: Logger, rooms: RoomAccess) {
    this.#inline = new InlineDispatcher(handler, options, rooms);
    this.#thresholdMs = options.inlineBelowMicros / 1000;
    // One run this long ends the lane at once; shorter outliers (a first call, a GC) only move the average.
    this.#stallMs = Math.max(10 * this.#thresholdMs, STALL_FLOOR_MS);
    this.#logger = logger;
  }

  get active(): boolean {
    return this.#active;
  }

  /** Loads the handler on the main thread too; a module that cannot load here keeps the lane off. */
  async start(server: ServerInfo, kind: HandlerKind): Promise<void> {
    if (kind !== 'request') return;
    try {
      await this.#inline.start(server);
      this.#usable = true;
    } catch (err) {
      this.#logger.warn({ err }, 'inlineBelowMicros: the handler does not load on the main thread; every request uses the pool');
    }
  }

  /** A reload switched versions: the main thread's copy of the handler is the old one; never run inline again. */
  retire(): void {
    if (!this.#usable) return;
    this.#usable = false;
    this.#active = false;
    this.#logger.info('inlineBelowMicros: the handler was reloaded, and the main thread cannot load a new version: every request uses the pool from now on');
  }

  /** The pool's measured cost per request (ms) for one batch. */
  observePoolCost(perRequestMs: number): void {
    if (!this.#usable || this.#active) return;
    this.#calmBatches = perRequestMs < this.#thresholdMs ? this.#calmBatches + 1 : 0;
    if (this.#calmBatches >= CALM_BATCHES && performance.now() >= this.#cooldownUntil) {
      this.#active = true;
      this.#runs = 0;
      this.#stalls = 0;
      this.#costMs = perRequestMs;
      this.#logger.debug({ costMicros: Math.round(perRequestMs * 1000) }, 'cheap requests now run on the main thread');
    }
  }

  submit(sink: RequestSink, seq: number, request: Buffer): void {
    const started = performance.now();
    this.#inline.submit(sink, seq, request);
    const cost = performance.now() - started;
    const warm = ++this.#runs > WARMUP_RUNS;
    // The average tracks the typical cost: one sample can move it by little (a pause is clipped);
    // sustained cost above the threshold still lifts it past.
    if (warm) this.#costMs += SMOOTHING * (Math.min(cost, 4 * this.#thresholdMs) - this.#costMs);
    // Runs are timed by the wall clock, so a garbage-collection pause or the OS preempting the
    // main thread can make any one run look long: STALLS_TO_TRIP long runs within STALL_WINDOW
    // runs (or a rising average) mean the handler itself is slow.
    if (this.#runs % STALL_WINDOW === 0) this.#stalls = 0;
    const stalled = cost > (warm ? this.#stallMs : WARMUP_STALL_MS) && ++this.#stalls >= STALLS_TO_TRIP;
    if (stalled || this.#costMs > this.#thresholdMs) this.#backToPool(cost);
  }

  #backToPool(costMs: number): void {
    this.#active = false;
    this.#calmBatches = 0;
    this.#cooldownUntil = performance.now() + this.#cooldownMs;
    this.#logger.info(
      { costMicros: Math.round(costMs * 1000), cooldownMs: this.#cooldownMs },
      'a request ran long on the main thread: requests go back to the pool',
    );
    this.#cooldownMs = Math.min(MAX_COOLDOWN_MS, this.#cooldownMs * 2);
  }
}
