// Owns one version of the handler on a pooled server: the module it loads, the WorkerPool whose
// threads run it, its channels by slot (one per worker), the thread each was placed on, the
// piscina tasks running their loops — and its life:
//
//   starting → serving → draining → retired        (a reload that succeeds)
//   starting → failed                               (a reload whose module does not load)
//
// Invariants: a version's channels live on its own pool's threads only. ESM caches a module per
// thread, so a new version needs threads that never imported the old one: a reload starts a new
// pool. A channel belongs to exactly one version for its whole life (a replacement after a death
// joins the version of the channel it replaces, in the same slot). A draining version takes no
// new request or session (its channels are 'draining', worker-channel.ts); it retires — its pool
// closes — only once every channel of it is closed or lost and every loop of it has ended.

import type { HandlerRef } from '../handler-module.js';
import type { WorkerChannel } from './worker-channel.js';
import type { WorkerPool } from './worker-pool.js';

export type VersionState = 'starting' | 'serving' | 'draining' | 'retired' | 'failed';

export class HandlerVersion<C> {
  /** 1 for the handler the server started with, one more for each reload that switched. 0 while starting. */
  number = 0;
  readonly handler: HandlerRef;
  readonly pool: WorkerPool;
  /** The pool is this version's own (closed with it), not the shared `pool` option's. */
  readonly ownsPool: boolean;
  state: VersionState = 'starting';
  /** The handler declared its requests safe to run twice (recovery.ts). */
  idempotent = false;
  /** Channels by slot; a replacement takes the slot of the channel it replaces. */
  readonly channels: Array<WorkerChannel<C>> = [];
  /** The thread each slot's channel was placed on, so a replacement avoids the others'. */
  readonly placedOn: number[] = [];
  /** The piscina tasks running this version's channel loops, until they end. */
  readonly loops = new Set<Promise<unknown>>();
  /** Why a starting version cannot serve (a channel could not load the handler). */
  loadError: unknown = undefined;
  /** Past its reload deadline: what still runs on it is cut (ERR_RELOAD_TIMEOUT), not failed as a death. */
  cut = false;
  /** The reload timeline's timers of a draining version (reload.ts); cleared when it retires. */
  readonly timers: NodeJS.Timeout[] = [];

  constructor(handler: HandlerRef, pool: WorkerPool, ownsPool: boolean) {
    this.handler = handler;
    this.pool = pool;
    this.ownsPool = ownsPool;
  }

  /** Whether `channel` is one of this version's (now). */
  has(channel: WorkerChannel<C>): boolean {
    return this.channels.includes(channel);
  }

  /** Nothing of this version runs any more: every channel closed or lost, every loop ended. */
  get finished(): boolean {
    return this.loops.size === 0 && this.channels.every((channel) => channel.phase === 'closed' || channel.phase === 'lost');
  }

  /** Requests outstanding and sessions carried, over its channels. */
  get carried(): number {
    let count = 0;
    for (const channel of this.channels) if (!channel.gone) count += channel.used + channel.sessionCount;
    return count;
  }

  clearTimers(): void {
    for (const timer of this.timers.splice(0)) clearTimeout(timer);
  }
}
