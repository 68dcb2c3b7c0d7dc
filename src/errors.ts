// Owns sockserv's error vocabulary: one error class with a stable `code`, and the list of codes.
// Codes are part of the public API (docs/operations.md lists what a client sees for each);
// messages may change, codes may not.

/**
 * Every error code sockserv uses, by name. Stable: part of the API (messages are not).
 * @enum
 */
export const ErrorCodes = Object.freeze({
  /** A frame grew past `maxFrameBytes` before it was complete. Only its connection is closed. */
  FRAME_TOO_LONG: 'ERR_FRAME_TOO_LONG',
  /** A framer saw bytes that cannot start a valid frame (custom framers, RESP). */
  FRAME_INVALID: 'ERR_FRAME_INVALID',
  /** A handler threw or rejected. */
  HANDLER_FAILED: 'ERR_HANDLER_FAILED',
  /** The handler module could not be imported. */
  HANDLER_LOAD: 'ERR_HANDLER_LOAD',
  /** The handler module's export is not a handler class. */
  HANDLER_INVALID: 'ERR_HANDLER_INVALID',
  /** The worker running the request died (process.exit, out of memory, crash). */
  WORKER_DIED: 'ERR_WORKER_DIED',
  /** A client stopped reading and its unsent output passed `writeBufferHardLimit`. */
  WRITE_BUFFER_OVERFLOW: 'ERR_WRITE_BUFFER_OVERFLOW',
  /** A handler ran past `requestTimeout`: its worker was stopped and replaced. */
  REQUEST_TIMEOUT: 'ERR_REQUEST_TIMEOUT',
  /** A connection sent no complete request (and had none in flight) for `idleTimeout`. */
  IDLE_TIMEOUT: 'ERR_IDLE_TIMEOUT',
  /** A connection arrived while `maxConnections` were open; it was refused. */
  TOO_MANY_CONNECTIONS: 'ERR_TOO_MANY_CONNECTIONS',
  /** shutdown() ran past `shutdownTimeout`; the remaining connections were cut. */
  SHUTDOWN_TIMEOUT: 'ERR_SHUTDOWN_TIMEOUT',
  /** The server was used after close(). */
  SERVER_CLOSED: 'ERR_SERVER_CLOSED',
  /** The platform cannot do this (UnixDatagramServer on Node.js). */
  UNSUPPORTED: 'ERR_UNSUPPORTED',
  /** An option or argument is out of range or of the wrong kind. */
  BAD_OPTION: 'ERR_BAD_OPTION',
  /** With `proxyProtocol`: a connection did not start with a valid PROXY header (v1 or v2), or not within `proxyHeaderTimeout`. Only it is closed. */
  PROXY_HEADER_INVALID: 'ERR_PROXY_HEADER_INVALID',
  /** The buffered request and reply bytes of all connections passed `maxClientMemory`: the connections holding the most were closed. */
  CLIENT_MEMORY: 'ERR_CLIENT_MEMORY',
  /** A StreamRequestHandler wrote after its connection closed (Python raises BrokenPipeError). */
  CONNECTION_CLOSED: 'ERR_CONNECTION_CLOSED',
  /** An overridable step of the server (handleError, errorReply, verifyRequest, a Framer…) threw: only the connection it ran for was closed. */
  HOOK_FAILED: 'ERR_HOOK_FAILED',
  /** A UDP datagram arrived while `maxDatagramsInFlight` were being handled; it was dropped. */
  DATAGRAMS_IN_FLIGHT: 'ERR_DATAGRAMS_IN_FLIGHT',
  /** After a reload, a request or session still ran on the old version `reloadTimeout` + `shutdownTimeout` ms after the switch: it was cut. */
  RELOAD_TIMEOUT: 'ERR_RELOAD_TIMEOUT',
  /** `sendTo(clientId, …)` named a connection that is gone (or never was): nothing was sent. */
  NO_SUCH_CLIENT: 'ERR_NO_SUCH_CLIENT',
  /**
   * A room call (join, leave, broadcast, sendTo) in a server running in several processes without
   * `pubsub`: each process would have rooms of its own, so they are refused rather than split.
   */
  PUBSUB_REQUIRED: 'ERR_PUBSUB_REQUIRED',
  /** The `pubsub` server (Redis) cannot be reached: the server does not start, or a message to other processes was dropped (logged). */
  PUBSUB_UNAVAILABLE: 'ERR_PUBSUB_UNAVAILABLE',
  /** A connection did not read what rooms pushed to it: its unsent output passed `maxPushBytes` (or `pushSoftLimit` for `pushSoftSeconds`), and it was closed. */
  PUSH_BUFFER_OVERFLOW: 'ERR_PUSH_BUFFER_OVERFLOW',
} as const);

/** One of the ErrorCodes values: 'ERR_FRAME_TOO_LONG', 'ERR_HANDLER_FAILED', … */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * The one error class sockserv raises, logs and hands to handleError(): branch on `code`, never
 * on the message. A handler's own error is wrapped as ERR_HANDLER_FAILED with the handler's stack,
 * its own code kept as `handlerErrorCode`.
 */
export class SockservError extends Error {
  /** Always 'SockservError'. */
  override name = 'SockservError';
  /**
   * @param code The stable code (an ErrorCodes value), also a property.
   * @param message What happened, for people.
   */
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A plain, structured-clonable description of an error, as it crosses the worker boundary. */
export interface ErrorInfo {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/**
 * Describes anything a handler threw. Never throws itself: a thrown value may be an object without
 * a prototype (String() throws on it), a Proxy whose traps throw, or an Error whose getters do —
 * a failure to describe it must not turn a handler's error into a dead worker.
 */
export function toErrorInfo(error: unknown): ErrorInfo {
  try {
    if (error instanceof Error) {
      const code = (error as { code?: unknown }).code;
      return {
        name: String(error.name),
        message: String(error.message),
        code: typeof code === 'string' ? code : undefined,
        stack: typeof error.stack === 'string' ? error.stack : undefined,
      };
    }
  } catch {
    // An Error whose properties cannot be read: described below as what it is.
  }
  return { name: 'Error', message: `non-Error thrown: ${describe(error)}` };
}

/** toErrorInfo as JSON: what a worker sends for a failed request. Never throws. */
export function safeErrorJson(error: unknown): string {
  try {
    return JSON.stringify(toErrorInfo(error));
  } catch {
    return JSON.stringify({ name: 'Error', message: 'non-Error thrown (not describable)' });
  }
}

/** A short, safe description of any value. */
function describe(value: unknown): string {
  try {
    if (value === null || (typeof value !== 'object' && typeof value !== 'function')) {
      return typeof value === 'symbol' ? value.toString() : `${typeof value} ${String(value)}`;
    }
    if (Object.getPrototypeOf(value) === null) return 'an object without a prototype';
    return `${typeof value} ${String(value)}`.slice(0, 200);
  } catch {
    return `a ${typeof value} that cannot be printed`;
  }
}

/** ERR_WORKER_DIED for a request (or a session) that was running on a worker that died. */
export function workerDied(what: 'request' | 'session', cause: unknown): SockservError {
  return new SockservError(ErrorCodes.WORKER_DIED, `the worker running this ${what} died: ${describeCause(cause)}`, { cause });
}

/** ERR_REQUEST_TIMEOUT: a synchronous handler's worker was stopped, or an async handler was abandoned. */
export function requestTimeout(limitMs: number, how: 'stopped' | 'abandoned'): SockservError {
  return new SockservError(
    ErrorCodes.REQUEST_TIMEOUT,
    how === 'stopped'
      ? `handler ran past requestTimeout (${limitMs} ms); its worker was stopped`
      : `async handler did not settle within requestTimeout (${limitMs} ms)`,
  );
}

function describeCause(cause: unknown): string {
  try {
    if (cause instanceof Error) return cause.message;
  } catch {
    // fall through
  }
  return describe(cause);
}

/** Rebuilds an Error on the main thread from what a worker sent, keeping the handler's stack. */
export function fromErrorInfo(info: ErrorInfo, fallback: ErrorCode): SockservError {
  // A sockserv code raised in a worker (ERR_HANDLER_LOAD, say) survives the crossing; any other is
  // the handler's own and is kept as `handlerErrorCode`.
  const code = isErrorCode(info.code) ? info.code : fallback;
  const error = new SockservError(code, `${info.name}: ${info.message}`);
  if (info.stack) error.stack = `${error.name} [${code}]: handler error\n${info.stack}`;
  (error as { handlerErrorCode?: string }).handlerErrorCode = info.code;
  return error;
}

const CODES = new Set<string>(Object.values(ErrorCodes));

function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && CODES.has(value);
}

export function badOption(message: string): SockservError {
  return new SockservError(ErrorCodes.BAD_OPTION, message);
}
