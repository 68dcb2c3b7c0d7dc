// Owns the sequence of a reload (server.reload(), SIGHUP, `serve --watch`) and the timeline of the
// version it replaces. The mechanics — channels, pools, the scheduler — are the dispatcher's
// (pool-dispatcher.ts, through ReloadHost); this file says in what order they happen:
//
//   1. a new WorkerPool (fresh threads: ESM caches modules per thread), the module loaded and
//      validated there as a handler class of the server's kind (WorkerPool.preload);
//   2. a channel opened per new worker, each loading the module again in its loop;
//   3. the switch, in one synchronous step: the new version serves every request and session
//      from now on; the old one's channels start draining (worker-channel.ts);
//   4. the old version retires — its pool closes — once it carries nothing (the dispatcher checks
//      after each outcome, session end and loss). Its sessions get EOF at `reloadTimeout` (as in a
//      shutdown: they may write their last replies), and whatever still runs on it
//      `shutdownTimeout` later is cut: ERR_RELOAD_TIMEOUT.
//
// Invariants: a reload either switches or changes nothing that serves — if step 1 or 2 fails
// (the nginx rule) the new threads are closed and the old version goes on; reload() rejects with
// the load error (ERR_HANDLER_LOAD naming file:line, or ERR_HANDLER_INVALID). Reloads run one at a
// time, in the order asked. Version numbers count switches only: a failed reload takes none.

import { ErrorCodes, SockservError } from '../errors.js';
import type { HandlerKind } from '../handler.js';
import type { HandlerRef } from '../handler-module.js';
import type { HandlerVersion } from './handler-version.js';

/** What a reload needs of its dispatcher (pool-dispatcher.ts implements it). */
export interface ReloadHost<C> {
  /** The dispatcher is closing: no reload may start or switch. */
  readonly closing: boolean;
  /** The handler kind the server serves; a new version must be of the same. */
  readonly kind: HandlerKind;
  /** The serving version's module: what a reload without an argument loads again. */
  readonly handler: HandlerRef;
  /**
   * A starting version of `handler` on a new pool of its own (closed with the dispatcher if it
   * closes meanwhile), or null when the server runs on a shared pool (the `pool` option).
   */
  newVersion(handler: HandlerRef): HandlerVersion<C> | null;
  /** Opens one channel per worker of the version's pool; resolves once each is open or lost (then `loadError` says why). */
  openChannels(version: HandlerVersion<C>): Promise<void>;
  /** Makes `version` the one that serves, numbered; the one serving before starts draining and is returned. */
  switchTo(version: HandlerVersion<C>): HandlerVersion<C>;
  /** Closes a version that will never serve: its channels, then its pool. */
  discard(version: HandlerVersion<C>): Promise<void>;
  /** Gives the version's sessions EOF, as a shutdown does (they may still write their last replies). */
  drainSessions(version: HandlerVersion<C>): void;
  /** Stops what still runs on the version: its requests and sessions fail with ERR_RELOAD_TIMEOUT. */
  cut(version: HandlerVersion<C>): void;
}

export interface ReloadTimes {
  /** ms the old version's sessions go on after the switch before they get EOF. */
  reloadTimeout: number;
  /** ms more before what still runs on the old version is cut. */
  shutdownTimeout: number;
}

export class Reloader<C> {
  readonly #host: ReloadHost<C>;
  readonly #times: ReloadTimes;
  /** The reload running now (later ones wait for it). */
  #last: Promise<unknown> = Promise.resolve();

  constructor(host: ReloadHost<C>, times: ReloadTimes) {
    this.#host = host;
    this.#times = times;
  }

  /** Loads `handler` (default: the serving module, read again) in fresh workers and switches to it; resolves once the new version serves. */
  reload(handler: HandlerRef | undefined): Promise<{ version: number }> {
    const run = this.#last.then(() => this.#reload(handler));
    this.#last = run.catch(() => {});
    return run;
  }

  async #reload(asked: HandlerRef | undefined): Promise<{ version: number }> {
    const host = this.#host;
    if (host.closing) throw new SockservError(ErrorCodes.SERVER_CLOSED, 'the server is closing');
    const handler = asked ?? host.handler;
    const version = host.newVersion(handler);
    if (version === null) {
      throw new SockservError(
        ErrorCodes.UNSUPPORTED,
        'reload() needs threads that never imported the handler, and this server runs on a shared pool (the `pool` option) whose threads serve other servers too: give it a pool of its own (the `workers` option) to reload it',
      );
    }
    try {
      const loaded = await version.pool.preload(handler);
      if (loaded.kind !== host.kind) {
        throw new SockservError(
          ErrorCodes.HANDLER_INVALID,
          `${handler.url} export "${handler.exportName}" is a ${describeKind(loaded.kind)}, and this server serves a ${describeKind(host.kind)}: a reload keeps the handler's kind`,
        );
      }
      version.idempotent = loaded.idempotent;
      await host.openChannels(version);
      if (version.loadError !== undefined) throw asLoadError(version.loadError);
      if (host.closing) throw new SockservError(ErrorCodes.SERVER_CLOSED, 'the server closed during the reload');
    } catch (error) {
      version.state = 'failed';
      await host.discard(version);
      // Closing stops the new threads under the reload: that, not what they did, is why it failed.
      if (host.closing) throw new SockservError(ErrorCodes.SERVER_CLOSED, 'the server closed during the reload', { cause: error });
      throw error;
    }
    const old = host.switchTo(version);
    this.#retire(old);
    return { version: version.number };
  }

  /** The old version's timeline: EOF to its sessions at reloadTimeout, the cut shutdownTimeout later. */
  #retire(old: HandlerVersion<C>): void {
    if (old.state !== 'draining') return; // nothing left on it: retired at the switch
    const { reloadTimeout, shutdownTimeout } = this.#times;
    const drain = setTimeout(() => {
      if (old.state === 'draining') this.#host.drainSessions(old);
    }, reloadTimeout);
    const cut = setTimeout(() => {
      if (old.state === 'draining') this.#host.cut(old);
    }, reloadTimeout + shutdownTimeout);
    drain.unref();
    cut.unref();
    old.timers.push(drain, cut);
  }
}

function describeKind(kind: HandlerKind): string {
  return kind === 'stream' ? 'StreamRequestHandler (one handler per connection)' : 'request handler (one per framed request)';
}

function asLoadError(error: unknown): SockservError {
  return error instanceof SockservError ? error : new SockservError(ErrorCodes.HANDLER_LOAD, String(error), { cause: error });
}
