// Owns `sockserv serve`: serve a handler module from the command line. Prints one line
// `listening on tcp://HOST:PORT` once ready; SIGINT/SIGTERM shut down gracefully and exit 0.

import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { FramingSpec } from '../framing/index.js';
import { resolveFraming } from '../framing/index.js';
import type { BaseServer } from '../server/base-server.js';
import { TCPServer, ThreadingTCPServer } from '../server/tcp-server.js';
import { UsageError, parseCount } from './usage-error.js';

export const SERVE_USAGE = `usage: sockserv serve <handler-module> [--export NAME] [--host H] [--port P]
         [--framing raw|line|length|delimiter:HEX] [--workers N | --inline]
         [--max-frame-bytes N] [--shutdown-timeout MS]`;

export async function serve(argv: string[]): Promise<number> {
  const server = createServerFromArgs(argv);
  const { host, port } = await server.listen();
  process.stdout.write(`listening on tcp://${host.includes(':') ? `[${host}]` : host}:${port}\n`);
  const stop = () => void server.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await server.serveForever();
  await server.close();
  return 0;
}

export function createServerFromArgs(argv: string[]): BaseServer {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        export: { type: 'string' },
        host: { type: 'string' },
        port: { type: 'string' },
        framing: { type: 'string' },
        workers: { type: 'string' },
        inline: { type: 'boolean' },
        'max-frame-bytes': { type: 'string' },
        'shutdown-timeout': { type: 'string' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError('serve takes exactly one handler module');
  if (values.inline && values.workers !== undefined) throw new UsageError('--workers and --inline exclude each other');
  const port = parseCount('--port', values.port) ?? 8001;
  if (port > 65535) throw new UsageError(`--port must be at most 65535 (got ${port})`);
  const framing = (values.framing ?? 'line') as FramingSpec;
  try {
    resolveFraming(framing);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const options = {
    framing,
    exportName: values.export,
    workers: parseCount('--workers', values.workers, 1),
    maxFrameBytes: parseCount('--max-frame-bytes', values['max-frame-bytes'], 1),
    shutdownTimeout: parseCount('--shutdown-timeout', values['shutdown-timeout']),
  };
  const address = { host: values.host ?? '127.0.0.1', port };
  const module = resolve(positionals[0]!);
  return values.inline ? new TCPServer(address, module, options) : new ThreadingTCPServer(address, module, options);
}
