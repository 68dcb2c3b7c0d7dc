// Owns the logging contract: a pino-compatible subset (level methods taking a context object and
// a message). sockserv logs events — connection errors, limit hits, worker replacements, shutdown
// progress — once each, never per byte. The default writes warnings and errors to stderr, as
// Python's socketserver prints handler tracebacks.

/** One level's log method, as pino's: `logger.warn({ code, client }, 'message')` or `logger.warn('message')`. */
export interface LogFn {
  /** Logs `message` with structured fields; an `err` field holds an Error. */
  (context: object, message?: string): void;
  /** Logs a bare message. */
  (message: string): void;
}

/**
 * What sockserv logs through: any pino logger fits, as does a console-backed object with these
 * four methods. Pass it as the `logger` option; the default is stderrLogger.
 */
export interface Logger {
  /** Connection errors (resets, failed TLS handshakes): expected in production, useful when debugging. */
  debug: LogFn;
  /** Lifecycle: listening, metrics endpoint, the inline lane switching. */
  info: LogFn;
  /** Limits hit (maxConnections, idle timeout, bad input, slow readers), workers replaced, shutdown cutting connections. */
  warn: LogFn;
  /** Failed requests (handleError), listener errors. */
  error: LogFn;
}

const ignore: LogFn = () => {};

/** Logs nothing. */
export const silentLogger: Logger = Object.freeze({ debug: ignore, info: ignore, warn: ignore, error: ignore });

function toStderr(level: string): LogFn {
  return ((context: object | string, message?: string) => {
    if (typeof context === 'string') {
      process.stderr.write(`sockserv ${level}: ${context}\n`);
      return;
    }
    const { err, ...rest } = context as { err?: unknown };
    const detail = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
    const stack = err instanceof Error && err.stack ? `\n${err.stack}` : '';
    process.stderr.write(`sockserv ${level}: ${message ?? ''}${detail}${stack}\n`);
  }) as LogFn;
}

/** Warnings and errors to stderr, one line each (plus a stack for errors that carry one). */
export const stderrLogger: Logger = Object.freeze({
  debug: ignore,
  info: ignore,
  warn: toStderr('warn'),
  error: toStderr('error'),
});
