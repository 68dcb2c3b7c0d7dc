// Owns the logging contract: a pino-compatible subset (level methods taking a context object and
// a message). sockserv logs events — connection errors, limit hits, worker replacements, shutdown
// progress — once each, never per byte. The default writes warnings and errors to stderr, as
// Python's socketserver prints handler tracebacks.

export interface LogFn {
  (context: object, message?: string): void;
  (message: string): void;
}

export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
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
