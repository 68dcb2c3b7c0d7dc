// Owns `sockserv serve`: serve a handler module from the command line. Prints one line
// `listening on tcp://HOST:PORT` (udp://…, unix://PATH) once ready, and nothing else on stdout;
// logs go to stderr (src/cli/log.ts). SIGINT/SIGTERM shut down gracefully and exit 0.
// With --processes N the same server runs in N processes behind one port (src/cli/cluster.ts).
// --health-port serves /livez and /readyz (src/metrics/health.ts) from before the server listens
// until it has drained; --metrics-port serves them too, next to /metrics. --drain-delay MS makes
// SIGTERM turn /readyz to 503 first and keep serving MS ms before the drain closes the listener.
// --pubsub redis://HOST:PORT shares rooms between processes and machines; --processes N without it
// refuses room calls (ERR_PUBSUB_REQUIRED) rather than give each process rooms of its own.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { FramingSpec } from '../framing/index.js';
import { resolveFraming } from '../framing/index.js';
import { type HealthOptions, markNotReady, serveHealth } from '../metrics/health.js';
import { addressUrl } from '../server/address.js';
import type { BaseServer } from '../server/base-server.js';
import { coreOf } from '../server/core.js';
import { TCPServer, ThreadingTCPServer } from '../server/tcp-server.js';
import { ThreadingUDPServer, UDPServer } from '../server/udp-server.js';
import { ThreadingUnixStreamServer, UnixStreamServer } from '../server/unix-server.js';
import { serveProcesses, threadsPerProcess } from './cluster.js';
import { createCliLogger, parseLogLevel } from './log.js';
import { UsageError, parseCount } from './usage-error.js';

export const SERVE_USAGE = `usage: sockserv serve <handler-module> [--export NAME] [--host H] [--port P]
         [--udp | --unix PATH] [--framing raw|line|length|resp|delimiter:HEX]
         [--workers N | --inline] [--inline-below-micros US] [--max-frame-bytes N] [--shutdown-timeout MS]
         [--max-client-memory BYTES]
         [--tls-cert FILE --tls-key FILE] [--log-level trace|debug|info|warn|error|silent]
         [--metrics-port N [--metrics-host H]] [--health-port N [--health-host H]]
         [--drain-delay MS] [--processes N] [--pubsub redis://HOST:PORT] [--proxy-protocol]
  <handler-module> may be .js, .mjs, .cjs, or TypeScript as written (.ts in a "type": "module"
  package, .mts): sockserv compiles it with tsx as it loads.
  Logs are JSON lines on stderr (readable lines on a terminal), at --log-level (default info).
  --metrics-port serves Prometheus metrics on http://H:N/metrics (H defaults to 127.0.0.1), and
  /livez and /readyz. --health-port serves only /livez (200 while the process answers) and
  /readyz (200 while listening; 503 before, and from the moment SIGTERM starts the drain).
  --drain-delay MS: on SIGTERM/SIGINT, /readyz turns 503 at once but the server keeps accepting
  for MS ms (time for a load balancer's health checks to notice), then drains (default 0).
  --processes N runs N processes behind the one port (node:cluster), each with its own pool of
  --workers threads (default: the cores shared out); see docs/deployment.md.
  --pubsub redis://HOST:PORT: rooms (join, broadcast, sendTo) are shared through Redis pub/sub
  with every server given the same URL — needed for rooms with --processes N, which otherwise
  refuses them (ERR_PUBSUB_REQUIRED).
  --proxy-protocol: every connection starts with a PROXY v1/v2 header from a load balancer.
  --max-client-memory: buffered request and reply bytes of all connections (default 256 MiB);
  past it the connections holding the most are closed (ERR_CLIENT_MEMORY).`;

export async function serve(argv: string[]): Promise<number> {
  const { server, processes, health, drainDelay } = parseServeArgs(argv);
  if (processes !== undefined) {
    return serveProcesses(server, processes, (s) => addressUrl(s.address));
  }
  // Before listen(): /readyz answers 503 while the handler loads, then 200 once listening.
  if (health !== undefined) await serveHealth([server], health);
  const address = addressUrl(await server.listen());
  process.stdout.write(`listening on ${address}\n`);
  const { workers } = server.stats();
  server.logger.info({ address, workers, framing: coreOf(server).framing.name }, 'serving');
  const shutDown = (signal: NodeJS.Signals) => {
    const { connections, requestsInFlight } = server.stats();
    server.logger.info({ signal, connections, requestsInFlight }, 'shutting down: finishing the requests in flight');
    void server.close();
  };
  const stop = (signal: NodeJS.Signals) => {
    if (drainDelay === undefined || drainDelay === 0) return shutDown(signal);
    markNotReady(server);
    server.logger.info({ signal, drainDelay }, `not ready: /readyz answers 503; still serving for ${drainDelay} ms, then shutting down`);
    setTimeout(() => shutDown(signal), drainDelay);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  await server.serveForever();
  await server.close();
  server.logger.info('stopped');
  return 0;
}

/** The server the `serve` arguments describe (not listening yet): what test/cli-options.test.ts checks flags against. */
export function createServerFromArgs(argv: string[]): BaseServer {
  return parseServeArgs(argv).server;
}

/** Parses `serve` arguments: the server they describe, and how many processes should run it (--processes). */
function parseServeArgs(argv: string[]): {
  server: BaseServer;
  processes: number | undefined;
  health: HealthOptions | undefined;
  drainDelay: number | undefined;
} {
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
        udp: { type: 'boolean' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        unix: { type: 'string' },
        'max-frame-bytes': { type: 'string' },
        'max-client-memory': { type: 'string' },
        'inline-below-micros': { type: 'string' },
        'shutdown-timeout': { type: 'string' },
        'log-level': { type: 'string' },
        'metrics-port': { type: 'string' },
        'metrics-host': { type: 'string' },
        'health-port': { type: 'string' },
        'health-host': { type: 'string' },
        'drain-delay': { type: 'string' },
        processes: { type: 'string' },
        pubsub: { type: 'string' },
        'proxy-protocol': { type: 'boolean' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError('serve takes exactly one handler module');
  if (values.inline && values.workers !== undefined) throw new UsageError('--workers and --inline exclude each other');
  if (values.udp && values.unix !== undefined) throw new UsageError('--udp and --unix exclude each other');
  if (values.unix !== undefined && (values.host !== undefined || values.port !== undefined)) {
    throw new UsageError('--unix PATH replaces --host and --port');
  }
  const port = parseCount('--port', values.port) ?? 8001;
  if (port > 65535) throw new UsageError(`--port must be at most 65535 (got ${port})`);
  const framing = values.framing as FramingSpec | undefined; // undefined: the framing option's default
  try {
    if (framing !== undefined) resolveFraming(framing);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together');
  }
  if (values['tls-cert'] !== undefined && (values.udp || values.unix !== undefined)) {
    throw new UsageError('TLS is for TCP: not with --udp or --unix');
  }
  const tls =
    values['tls-cert'] !== undefined
      ? { cert: readFileOrUsage('--tls-cert', values['tls-cert']), key: readFileOrUsage('--tls-key', values['tls-key']!) }
      : undefined;
  const metricsPort = parseCount('--metrics-port', values['metrics-port']);
  if (metricsPort !== undefined && metricsPort > 65535) throw new UsageError(`--metrics-port must be at most 65535 (got ${metricsPort})`);
  if (values['metrics-host'] !== undefined && metricsPort === undefined) throw new UsageError('--metrics-host needs --metrics-port');
  const healthPort = parseCount('--health-port', values['health-port']);
  if (healthPort !== undefined && healthPort > 65535) throw new UsageError(`--health-port must be at most 65535 (got ${healthPort})`);
  if (values['health-host'] !== undefined && healthPort === undefined) throw new UsageError('--health-host needs --health-port');
  const health = healthPort === undefined ? undefined : { port: healthPort, host: values['health-host'] };
  const drainDelay = parseCount('--drain-delay', values['drain-delay']);
  const processes = parseCount('--processes', values.processes, 1);
  if (processes !== undefined && (values.udp || values.unix !== undefined)) throw new UsageError('--processes is for TCP: not with --udp or --unix');
  if (processes !== undefined && healthPort !== undefined) {
    throw new UsageError('--processes and --health-port exclude each other: each process would answer for itself on one port');
  }
  if (processes !== undefined && drainDelay !== undefined) throw new UsageError('--drain-delay is not for --processes (its processes drain on their own)');
  if (processes !== undefined && metricsPort !== undefined) {
    throw new UsageError('--processes and --metrics-port exclude each other: each process would answer for itself on one port');
  }
  if (values.pubsub !== undefined && !/^rediss?:\/\/./.test(values.pubsub)) {
    throw new UsageError(`--pubsub must be a redis:// or rediss:// URL (got "${values.pubsub}")`);
  }
  if (values['proxy-protocol'] && values.udp) throw new UsageError('--proxy-protocol is for stream connections: not with --udp');
  if (values['proxy-protocol'] && tls !== undefined) throw new UsageError('--proxy-protocol and TLS exclude each other: the PROXY header comes before the handshake');
  const options = {
    tls,
    logger: createCliLogger(parseLogLevel(values['log-level'])),
    metrics: metricsPort === undefined ? undefined : { port: metricsPort, host: values['metrics-host'] },
    framing,
    exportName: values.export,
    workers: parseCount('--workers', values.workers, 1) ?? (processes === undefined ? undefined : threadsPerProcess(processes)),
    proxyProtocol: values['proxy-protocol'],
    maxFrameBytes: parseCount('--max-frame-bytes', values['max-frame-bytes'], 1),
    maxClientMemory: parseCount('--max-client-memory', values['max-client-memory'], 1),
    inlineBelowMicros: parseCount('--inline-below-micros', values['inline-below-micros']),
    shutdownTimeout: parseCount('--shutdown-timeout', values['shutdown-timeout']),
    pubsub: values.pubsub,
  };
  const address = { host: values.host ?? '127.0.0.1', port };
  const module = resolve(positionals[0]!);
  let server: BaseServer;
  if (values.unix !== undefined) {
    const path = resolve(values.unix);
    server = values.inline ? new UnixStreamServer(path, module, options) : new ThreadingUnixStreamServer(path, module, options);
  } else if (values.udp) server = values.inline ? new UDPServer(address, module, options) : new ThreadingUDPServer(address, module, options);
  else server = values.inline ? new TCPServer(address, module, options) : new ThreadingTCPServer(address, module, options);
  if (processes !== undefined && values.pubsub === undefined) coreOf(server).rooms.refuseWithout(`served by --processes ${processes}`);
  return { server, processes, health, drainDelay };
}

function readFileOrUsage(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path}: ${(error as Error).message}`);
  }
}
