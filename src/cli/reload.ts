// Owns reloading from the command line (server.reload(), src/dispatch/reload.ts): SIGHUP to
// `sockserv serve` reloads the handler module from disk, as nginx reloads on SIGHUP, and
// `--watch` (./watch.ts) does on a file change. Each reload logs exactly one line on stderr:
//
//   reloaded handler.ts in 140 ms (version 3)
//   reload failed, still serving version 2: ERR_HANDLER_LOAD: cannot load handler module …: /path/handler.ts:5:31: ERROR: Expected "}" but found ";"
//
// With --processes N the primary owns SIGHUP and reloads the processes one at a time
// (rollingReload): each worker process reloads when asked over the cluster IPC channel and says
// how it went; the next is asked only once the one before serves the new version, and a failure
// stops the rollout (every process then still serves a working version). A worker process itself
// ignores SIGHUP: a hangup sent to the whole process group must not reload each one twice.

import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:cluster';
import type { Logger } from '../logger.js';
import type { BaseServer } from '../server/base-server.js';
import { type HandlerRef } from '../handler-module.js';

/** Primary → worker process: reload the handler. */
interface ReloadMessage {
  type: 'sockserv:reload';
}

/** Worker process → primary: how its reload went. */
interface ReloadedMessage {
  type: 'sockserv:reloaded';
  ok: boolean;
  version: number;
  error?: string;
}

/** How long the primary waits for one process to reload before it gives up on the rollout. */
const PROCESS_RELOAD_MS = 120_000;

/** Reloads `server` and logs the one line; resolves with how it went (never rejects). */
export async function reloadAndLog(server: BaseServer, trigger: string): Promise<{ ok: boolean; version: number; error?: string }> {
  const name = handlerName(server);
  const started = performance.now();
  try {
    const { version } = await server.reload();
    const ms = Math.round(performance.now() - started);
    server.logger.info({ version, ms, trigger }, `reloaded ${name} in ${ms} ms (version ${version})`);
    return { ok: true, version };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    // A worker's error arrives as "SockservError: …" (fromErrorInfo): the code says that already.
    const message = ((error as Error)?.message ?? String(error)).replace(/^SockservError: /, '');
    const detail = `${typeof code === 'string' ? `${code}: ` : ''}${message}`;
    const version = server.stats().handlerVersion;
    server.logger.error({ code, trigger }, `reload failed, still serving version ${version}: ${detail}`);
    return { ok: false, version, error: detail };
  }
}

/** SIGHUP reloads `server` (one at a time: a SIGHUP during a reload queues one more). Returns the uninstaller. */
export function reloadOnSighup(server: BaseServer): () => void {
  const onHup = () => void reloadAndLog(server, 'SIGHUP');
  process.on('SIGHUP', onHup);
  return () => process.off('SIGHUP', onHup);
}

/** In a worker process of --processes: reloads when the primary asks, and answers; SIGHUP is the primary's. Returns the uninstaller. */
export function reloadWhenAsked(server: BaseServer): () => void {
  const onMessage = (message: unknown) => {
    if ((message as ReloadMessage | null)?.type !== 'sockserv:reload') return;
    void reloadAndLog(server, 'the primary (SIGHUP)').then((outcome) => {
      process.send?.({ type: 'sockserv:reloaded', ...outcome } satisfies ReloadedMessage);
    });
  };
  const onHup = () => server.logger.info('SIGHUP: ignored by a worker process; send it to the primary, which reloads every process in turn');
  process.on('message', onMessage);
  process.on('SIGHUP', onHup);
  return () => {
    process.off('message', onMessage);
    process.off('SIGHUP', onHup);
  };
}

/**
 * The primary's SIGHUP: reloads `workers` one after another, each once the one before serves the
 * new version. Stops at the first failure (a broken module fails the same way in every process):
 * the processes before it serve the new version, the rest the old one. Resolves when done.
 */
export async function rollingReload(workers: readonly Worker[], logger: Logger): Promise<boolean> {
  logger.info({ processes: workers.length }, `SIGHUP: reloading ${workers.length} process${workers.length === 1 ? '' : 'es'} one at a time`);
  const started = performance.now();
  for (const [i, worker] of workers.entries()) {
    const outcome = await askToReload(worker);
    if (!outcome.ok) {
      logger.error(
        { worker: worker.process.pid, reloaded: i, of: workers.length },
        `reload stopped at process ${i + 1} of ${workers.length} (pid ${worker.process.pid}): ${outcome.error}; ${i === 0 ? 'every process still serves the version before' : `${i} reloaded, the others still serve the version before`}`,
      );
      return false;
    }
  }
  const ms = Math.round(performance.now() - started);
  logger.info({ processes: workers.length, ms }, `reloaded ${workers.length} process${workers.length === 1 ? '' : 'es'} in ${ms} ms`);
  return true;
}

function askToReload(worker: Worker): Promise<{ ok: boolean; error?: string }> {
  return new Promise((resolve) => {
    const finish = (outcome: { ok: boolean; error?: string }) => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', onExit);
      resolve(outcome);
    };
    const onMessage = (message: unknown) => {
      const reply = message as ReloadedMessage | null;
      if (reply?.type === 'sockserv:reloaded') finish(reply.ok ? { ok: true } : { ok: false, error: reply.error ?? 'failed' });
    };
    const onExit = () => finish({ ok: false, error: 'the process exited' });
    const timer = setTimeout(() => finish({ ok: false, error: `no answer within ${PROCESS_RELOAD_MS / 1000} s` }), PROCESS_RELOAD_MS);
    worker.on('message', onMessage);
    worker.on('exit', onExit);
    if (!worker.isConnected()) return finish({ ok: false, error: 'the process is not connected' });
    worker.send({ type: 'sockserv:reload' } satisfies ReloadMessage);
  });
}

/** The handler module's file name, as the reload line prints it. */
function handlerName(server: BaseServer): string {
  const source = server.handlerSource;
  if (typeof source === 'function') return source.name || 'the handler';
  return moduleName(source);
}

function moduleName(ref: HandlerRef): string {
  try {
    return ref.url.startsWith('file:') ? basename(fileURLToPath(ref.url)) : ref.url;
  } catch {
    return ref.url;
  }
}
