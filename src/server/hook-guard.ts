// Owns running the server's overridable steps — user code — guarded: handleError, errorReply,
// verifyRequest, processRequest/finishRequest, shutdownRequest/closeRequest, serviceActions,
// onClose callbacks, and a custom Framer's push/next/encode. A bug in one of them must not take
// the process (and every other client) down with it: the exception, or the rejection of a hook
// that returned a promise, is logged with its stack (per hook, the first of each second in full,
// then a count: ErrorBurst), the caller closes the one connection it ran for, and everything else goes
// on — the batch being released, the write-set flush, the other connections.

import { ErrorCodes } from '../errors.js';
import type { ClientAddress } from '../handler.js';
import { ErrorBurst } from '../log-burst.js';
import type { Logger } from '../logger.js';

export class HookGuard {
  readonly #logger: Logger;
  /** One rate limit per hook: a flood from one does not hide the first failure of another. */
  readonly #failures = new Map<string, ErrorBurst>();

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /**
   * Runs `hook()`. If it throws (or returns a promise that rejects), logs the failure and calls
   * `onFailure` (typically: close the connection), and returns `fallback` in place of its result.
   */
  run<T>(name: string, client: ClientAddress | null, hook: () => T, onFailure: (() => void) | null, fallback: T): T {
    let result: T;
    try {
      result = hook();
    } catch (err) {
      this.failed(name, client, err, onFailure);
      return fallback;
    }
    if (isThenable(result)) {
      // An async hook: nobody awaits it, so a rejection would be unhandled (and end the process).
      (result as unknown as PromiseLike<unknown>).then(undefined, (err: unknown) => this.failed(name, client, err, onFailure));
    }
    return result;
  }

  /** Logs a hook failure caught elsewhere, then runs `onFailure` (itself guarded: it is ours, but must not throw either). */
  failed(name: string, client: ClientAddress | null, err: unknown, onFailure: (() => void) | null): void {
    let burst = this.#failures.get(name);
    if (burst === undefined) {
      burst = new ErrorBurst(this.#logger, `${name} threw: the connection it ran for is closed`);
      this.#failures.set(name, burst);
    }
    burst.hit({ code: ErrorCodes.HOOK_FAILED, hook: name, ...(client ? { client: client.join(':') } : {}), err });
    if (onFailure === null) return;
    try {
      onFailure();
    } catch {
      // onFailure closes a socket; nothing left to do if even that fails.
    }
  }
}

function isThenable(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
