// Owns the CLI's logging: pino, structured JSON lines on stderr (stdout carries only the
// `listening on` line, a contract scripts rely on). On a terminal the same records are written as
// one readable line each — time, level, message, then the fields — by the small formatter below,
// so there is no pretty-printing dependency. The library itself takes any pino-compatible logger.

import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { UsageError } from './usage-error.js';

/** The levels --log-level accepts, quietest last. */
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function parseLogLevel(value: string | undefined): LogLevel {
  const level = value ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')} (got "${level}")`);
  }
  return level as LogLevel;
}

/**
 * A pino logger on stderr: JSON lines, or readable lines when `pretty` (default: when stderr is a
 * terminal). JSON lines go through pino's asynchronous destination (sonic-boom): a burst of
 * failures with stacks must not block the event loop that serves every connection on
 * synchronous stderr writes. pino flushes it synchronously when the process exits, so no line is
 * lost at exit.
 */
export function createCliLogger(level: LogLevel, pretty = process.stderr.isTTY === true): PinoLogger {
  const destination: DestinationStream = pretty ? readableLines(process.stderr) : pino.destination({ dest: 2, sync: false });
  return pino({ level, base: { pid: process.pid } }, destination);
}


const LABELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** A pino destination that turns each JSON record into `HH:MM:SS.mmm LEVEL message key=value …`. */
function readableLines(stream: NodeJS.WriteStream): DestinationStream {
  return {
    write(line: string): void {
      stream.write(formatRecord(JSON.parse(line) as Record<string, unknown>));
    },
  };
}

/** One pino record as a readable line: UTC time, level, message, the other fields, and an error's stack indented below. */
export function formatRecord(record: Record<string, unknown>): string {
  const { time, level, msg, pid: _pid, hostname: _hostname, err, ...fields } = record;
  const clock = new Date(typeof time === 'number' ? time : Date.now()).toISOString().slice(11, 23);
  const label = (LABELS[level as number] ?? String(level)).padEnd(5);
  const message = String(msg ?? '');
  const detail = Object.entries(fields)
    .filter(([, value]) => !(typeof value === 'string' && message.includes(value))) // already in the message
    .map(([key, value]) => ` ${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  const stack = isErrorRecord(err) ? `\n    ${(err.stack ?? `${err.type}: ${err.message}`).replace(/\n/g, '\n    ')}` : '';
  return `${clock} ${label} ${message}${detail.join('')}${stack}\n`;
}

function isErrorRecord(value: unknown): value is { type?: string; message?: string; stack?: string } {
  return typeof value === 'object' && value !== null;
}
