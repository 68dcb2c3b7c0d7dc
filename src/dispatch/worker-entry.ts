// Owns how a pool worker starts: the file piscina loads in each worker thread, and finding it.
// That file is this module, compiled (dist/src/dispatch/worker-entry.js): workers load compiled
// JavaScript only (Node 20 cannot strip types), which is why `npm test` builds first. In a worker,
// `channel` and `load` below hand each task to workers/handler-host.js, imported as an ES module.
//
// Why this step instead of giving piscina workers/handler-host.js itself: piscina loads a task
// file with require() first, and with import() only if that fails. Plain Node then either refuses
// (ERR_REQUIRE_ESM) or returns the very ES module import() would. But a program run with tsx
// (`tsx server.ts`, `node --import tsx`) passes tsx's CommonJS hook to every worker (execArgv), and
// that hook compiles an ES module to a new, CommonJS copy: the worker ran a second sockserv beside
// the one the handler module imports — two BaseRequestHandler classes, two reply symbols — and
// every request failed. However this module is loaded, import() reaches the one ES copy.

import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCodes, SockservError } from '../errors.js';

type Host = typeof import('../../workers/handler-host.js');

let host: Promise<Host> | undefined;

/** The worker side, imported once per worker (never required: see above). */
function workerHost(): Promise<Host> {
  return (host ??= import('../../workers/handler-host.js'));
}

/** piscina's `channel` task: serves one dispatcher's channel (workers/handler-host.ts). */
export async function channel(task: Parameters<Host['channel']>[0]): ReturnType<Host['channel']> {
  return (await workerHost()).channel(task);
}

/** piscina's `load` task: loads the handler ahead of the first request (workers/handler-host.ts). */
export async function load(ref: Parameters<Host['load']>[0]): ReturnType<Host['load']> {
  return (await workerHost()).load(ref);
}

/** The file piscina starts each worker with: this module's compiled JavaScript. */
export function workerEntryUrl(): URL {
  const self = fileURLToPath(import.meta.url); // <root>/src/dispatch/… .ts (ts-jest), or <root>/dist/src/dispatch/… .js
  const entry = self.endsWith('.ts') ? resolve(dirname(self), '../../dist/src/dispatch/worker-entry.js') : self;
  if (!existsSync(entry)) {
    throw new SockservError(
      ErrorCodes.HANDLER_LOAD,
      `worker entry ${entry} is missing: run \`npm run build\` (workers load compiled JavaScript)`,
    );
  }
  return pathToFileURL(entry);
}
