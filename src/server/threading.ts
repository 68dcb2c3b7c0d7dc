// Owns ThreadingMixIn: as in Python, concurrency is a mix-in that overrides one step. Here the
// step is createDispatcher(): requests stream to a worker_threads pool instead of running
// on the main thread. Any server class becomes a threading one: ThreadingMixIn(TCPServer).

import { PoolDispatcher } from '../dispatch/pool-dispatcher.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import { WorkerPool } from '../dispatch/worker-pool.js';
import { badOption } from '../errors.js';
import type { BaseServer } from './base-server.js';
import { coreOf } from './core.js';

// TypeScript accepts a class as a mix-in base only if its constructor takes `...args: any[]`.
/** Any server class ThreadingMixIn can extend. */
export type ServerClass = abstract new (...args: any[]) => BaseServer;

/**
 * Python's ThreadingMixIn: returns `Base` with handlers run on a worker pool instead of the main
 * thread (it overrides createDispatcher()). `class MyServer extends ThreadingMixIn(TCPServer) {}`.
 * The handler must then be a module path or URL: each worker imports it.
 */
export function ThreadingMixIn<TBase extends ServerClass>(Base: TBase) {
  abstract class ThreadingServer extends Base {
    override createDispatcher(): Dispatcher {
      const source = this.handlerSource;
      if (typeof source === 'function') {
        throw badOption('a Threading server needs the handler as a module path or URL: each worker imports it');
      }
      const { options } = this;
      if (options.pool !== undefined && !(options.pool instanceof WorkerPool)) {
        throw badOption('pool must be a WorkerPool (new WorkerPool({ workers }))');
      }
      // A pool of its own per handler version: a reload starts a new one (src/dispatch/reload.ts).
      // A shared pool serves other servers too, so a server on one cannot reload.
      const newPool = () =>
        new WorkerPool({
          workers: options.workers,
          workerHeapMb: options.workerHeapMb,
          workerNice: options.workerNice,
          spareWorkers: options.spareWorkers,
          logger: this.logger,
        });
      if (options.pool !== undefined) return new PoolDispatcher(options.pool, false, source, options, this.logger, coreOf(this).rooms, null);
      return new PoolDispatcher(newPool(), true, source, options, this.logger, coreOf(this).rooms, newPool);
    }
  }
  return ThreadingServer;
}
