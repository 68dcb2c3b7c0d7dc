// Owns `sockserv serve`: serve a handler module from the command line. Prints one line
// `listening on tcp://HOST:PORT` (udp://…, unix://PATH) once ready, and nothing else on stdout;
// logs go to stderr (src/cli/log.ts). SIGINT/SIGTERM shut down gracefully and exit 0.
// With --processes N the same server runs in N processes behind one port (src/cli/cluster.ts).
// --health-port serves /livez and /readyz (src/metrics/health.ts) from before the server listens
// until it has drained; --metrics-port serves them too, next to /metrics. --drain-delay MS makes
// SIGTERM turn /readyz to 503 first and keep serving MS ms before the drain closes the listener.
// SIGHUP reloads the handler module from disk without dropping a connection, and --watch does on
// a change of the module or a file it imports (src/cli/reload.ts, src/cli/watch.ts).
// --pubsub redis://HOST:PORT shares rooms between processes and machines; --processes N without it
// refuses room calls (ERR_PUBSUB_REQUIRED) rather than give each process rooms of its own.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FramingSpec } from '../framing/index.js';
import { resolveFraming } from '../framing/index.js';
import { type HealthOptions, markNotReady, serveHealth } from '../metrics/health.js';
import { addressUrl } from '../server/address.js';
import type { BaseServer } from '../server/base-server.js';
import { coreOf } from '../server/core.js';
import { TCPServer, ThreadingTCPServer } from '../server/tcp-server.js';
import { ThreadingUDPServer, UDPServer } from '../server/udp-server.js';
import { ThreadingUnixStreamServer, UnixStreamServer } from '../server/unix-server.js';
import { DEFAULTS } from '../options.js';
import { type CommandSpec, type OptionValues, commandHelp, parseCommand } from './args.js';
import { serveProcesses, threadsPerProcess } from './cluster.js';
import { failureReport } from './failure.js';
import { type LogLevel, createCliLogger, parseLogLevel } from './log.js';
import { reloadAndLog, reloadOnSighup } from './reload.js';
import { watchImports } from './watch.js';
import { UsageError, parseCount } from './usage-error.js';

/** Where `sockserv serve` listens unless told: the port `npm start` serves examples/echo on. */
const DEFAULT_PORT = 8001;

/** `sockserv serve`: its options, from which the parser and --help are both made (args.ts). */
const SERVE = {
  name: 'serve',
  args: '<handler-module>',
  about:
    'Serves the handler class <handler-module> exports until SIGINT or SIGTERM, then answers the requests in flight and exits 0. ' +
    'Prints one line on stdout once listening (listening on tcp://HOST:PORT) and logs to stderr: JSON lines, or readable ones on a terminal. ' +
    '<handler-module> is .js, .mjs, .cjs, or TypeScript as written (.ts in a "type": "module" package, or .mts), which sockserv compiles with tsx as it loads.',
  options: {
    host: { type: 'string', value: 'HOST', default: '127.0.0.1', group: 'Where it listens', help: 'the address to listen on; 0.0.0.0 or :: for every interface' },
    port: { type: 'string', value: 'PORT', default: DEFAULT_PORT, group: 'Where it listens', help: 'the TCP (or UDP) port; 0 picks a free one' },
    udp: { type: 'boolean', group: 'Where it listens', help: 'UDP instead of TCP: each datagram is one request, its reply one datagram' },
    unix: { type: 'string', value: 'PATH', group: 'Where it listens', help: 'a Unix stream socket at PATH instead of TCP (instead of --host and --port)' },
    'tls-cert': { type: 'string', value: 'FILE', group: 'Where it listens', help: 'serve TLS with this certificate chain (PEM); needs --tls-key' },
    'tls-key': { type: 'string', value: 'FILE', group: 'Where it listens', help: "the TLS certificate's private key (PEM)" },
    'proxy-protocol': {
      type: 'boolean',
      group: 'Where it listens',
      help: 'every connection starts with a PROXY v1/v2 header from a load balancer, which gives the client address',
    },
    export: { type: 'string', value: 'NAME', default: DEFAULTS.exportName, group: 'Handlers', help: "the module's export that holds the handler class" },
    workers: {
      type: 'string',
      value: 'N',
      default: `one per core, ${DEFAULTS.workers} here`,
      group: 'Handlers',
      help: 'worker threads that run the handlers; with --processes, the cores are shared out between the processes',
    },
    inline: { type: 'boolean', group: 'Handlers', help: "run handlers on the main thread, without a worker pool (Python's TCPServer); no crash isolation" },
    'inline-below-micros': {
      type: 'string',
      value: 'US',
      default: DEFAULTS.inlineBelowMicros,
      group: 'Handlers',
      help: 'with a pool: run a request on the main thread while its measured cost stays under US microseconds; 0 never does',
    },
    processes: {
      type: 'string',
      value: 'N',
      default: 1,
      group: 'Handlers',
      help: 'N processes behind the one port (node:cluster), each with its own pool; see docs/deployment.md',
    },
    pubsub: {
      type: 'string',
      value: 'URL',
      group: 'Handlers',
      help: 'redis://HOST:PORT: share rooms (join, broadcast, sendTo) with every server given the same URL; needed for rooms with --processes, which otherwise refuses them (ERR_PUBSUB_REQUIRED)',
    },
    framing: {
      type: 'string',
      value: 'F',
      default: DEFAULTS.framing,
      group: 'Requests',
      help: 'how bytes become requests: line, length (32-bit length prefix), raw (each read), resp (Redis) or delimiter:HEX',
    },
    'max-frame-bytes': {
      type: 'string',
      value: 'N',
      default: DEFAULTS.maxFrameBytes,
      group: 'Requests',
      help: 'the longest request; a longer one ends its connection with ERROR ERR_FRAME_TOO_LONG after the replies before it',
    },
    'max-client-memory': {
      type: 'string',
      value: 'BYTES',
      default: DEFAULTS.maxClientMemory,
      group: 'Requests',
      help: 'request and reply bytes buffered for all connections; past it the connections holding the most are closed (ERR_CLIENT_MEMORY)',
    },
    'shutdown-timeout': {
      type: 'string',
      value: 'MS',
      default: DEFAULTS.shutdownTimeout,
      group: 'Stopping',
      help: 'on SIGINT or SIGTERM, how long the requests in flight may take to finish before their connections are cut',
    },
    'drain-delay': {
      type: 'string',
      value: 'MS',
      default: 0,
      group: 'Stopping',
      help: 'on SIGINT or SIGTERM, /readyz answers 503 at once while the server keeps serving MS ms, time for a load balancer to notice; then it drains',
    },
    'log-level': {
      type: 'string',
      value: 'LEVEL',
      default: 'info',
      group: 'Observing',
      help: 'trace, debug, info, warn, error, fatal or silent; at debug, a failure to start also prints its stack',
    },
    'metrics-port': {
      type: 'string',
      value: 'PORT',
      group: 'Observing',
      help: 'serve Prometheus metrics on http://HOST:PORT/metrics, and /livez and /readyz beside them',
    },
    'metrics-host': { type: 'string', value: 'HOST', default: '127.0.0.1', group: 'Observing', help: 'the address of --metrics-port' },
    'health-port': {
      type: 'string',
      value: 'PORT',
      group: 'Observing',
      help: 'serve only /livez (200 while the process answers) and /readyz (200 while listening, 503 before and while draining)',
    },
    'health-host': { type: 'string', value: 'HOST', default: '127.0.0.1', group: 'Observing', help: 'the address of --health-port' },
    watch: {
      type: 'boolean',
      group: 'Reloading',
      help: 'development: reload the handler when its module or a file it imports changes, keeping connections open (SIGHUP reloads too)',
    },
  },
  notes:
    'Exit status: 0 after a graceful shutdown; 1 when the server cannot start, with one line on stderr\n' +
    'naming the error code (EADDRINUSE, ERR_HANDLER_LOAD, ...) and why (--log-level debug adds the\n' +
    'stack); 2 on bad arguments. SIGHUP reloads the handler module from disk without dropping a\n' +
    'connection (a module that does not load changes nothing: the error is logged); with --processes,\n' +
    'one process at a time.',
} satisfies CommandSpec;

export async function serve(argv: string[]): Promise<number> {
  const parsed = parseCommand(SERVE, argv);
  if (parsed.help) {
    process.stdout.write(commandHelp(SERVE));
    return 0;
  }
  const { server, processes, health, drainDelay, logLevel, watch, module } = parseServeArgs(parsed.values, parsed.positionals);
  try {
    return await run(server, processes, health, drainDelay, watch, module);
  } catch (error) {
    process.stderr.write(failureReport(error, logLevel === 'debug' || logLevel === 'trace'));
    return 1;
  }
}

async function run(
  server: BaseServer,
  processes: number | undefined,
  health: HealthOptions | undefined,
  drainDelay: number | undefined,
  watch: boolean,
  module: string,
): Promise<number> {
  if (processes !== undefined) {
    return serveProcesses(server, processes, (s) => addressUrl(s.address));
  }
  // Before listen(): /readyz answers 503 while the handler loads, then 200 once listening.
  if (health !== undefined) await serveHealth([server], health);
  // Before listen() too: a SIGHUP that comes before the handler is installed kills the process.
  const stopSighup = reloadOnSighup(server);
  const address = addressUrl(await server.listen());
  // Watching before the listening line: once it is printed, a change reloads.
  const watcher = watch ? await watchImports(module, () => reloadAndLog(server, 'watch'), server.logger) : undefined;
  process.stdout.write(`listening on ${address}\n`);
  const { workers } = server.stats();
  server.logger.info({ address, workers, framing: coreOf(server).framing.name }, 'serving');
  const shutDown = (signal: NodeJS.Signals) => {
    watcher?.close();
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
  watcher?.close();
  await server.close();
  stopSighup();
  server.logger.info('stopped');
  return 0;
}

/** The server the `serve` arguments describe (not listening yet): what test/cli-options.test.ts checks flags against. */
export function createServerFromArgs(argv: string[]): BaseServer {
  const parsed = parseCommand(SERVE, argv);
  if (parsed.help) throw new UsageError('--help describes no server');
  return parseServeArgs(parsed.values, parsed.positionals).server;
}

/** Checks parsed `serve` arguments: the server they describe, how many processes run it (--processes), and the rest the command needs. */
function parseServeArgs(
  values: OptionValues<(typeof SERVE)['options']>,
  positionals: string[],
): {
  server: BaseServer;
  processes: number | undefined;
  health: HealthOptions | undefined;
  drainDelay: number | undefined;
  logLevel: LogLevel;
  watch: boolean;
  /** The handler module's absolute path. */
  module: string;
} {
  if (positionals.length !== 1) throw new UsageError('takes exactly one handler module: sockserv serve <handler-module> [options]');
  if (values.inline && values.workers !== undefined) throw new UsageError('--workers and --inline exclude each other');
  if (values.udp && values.unix !== undefined) throw new UsageError('--udp and --unix exclude each other');
  if (values.unix !== undefined && (values.host !== undefined || values.port !== undefined)) {
    throw new UsageError('--unix PATH replaces --host and --port');
  }
  const port = parseCount('--port', values.port) ?? DEFAULT_PORT;
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
  if (values.watch && values.inline) throw new UsageError('--watch reloads the handler in new worker threads: not with --inline (the main thread cannot load a new version of a module)');
  if (values.watch && processes !== undefined) throw new UsageError('--watch is a development mode for one process: not with --processes (SIGHUP to the primary reloads every process in turn)');
  if (values.pubsub !== undefined && !/^rediss?:\/\/./.test(values.pubsub)) {
    throw new UsageError(`--pubsub must be a redis:// or rediss:// URL (got "${values.pubsub}")`);
  }
  if (values['proxy-protocol'] && values.udp) throw new UsageError('--proxy-protocol is for stream connections: not with --udp');
  if (values['proxy-protocol'] && tls !== undefined) throw new UsageError('--proxy-protocol and TLS exclude each other: the PROXY header comes before the handshake');
  const logLevel = parseLogLevel(values['log-level']);
  const options = {
    tls,
    logger: createCliLogger(logLevel),
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
  const rest = { processes, health, drainDelay, logLevel, watch: values.watch === true, module };
  let server: BaseServer;
  if (values.unix !== undefined) {
    const path = resolve(values.unix);
    server = values.inline ? new UnixStreamServer(path, module, options) : new ThreadingUnixStreamServer(path, module, options);
  } else if (values.udp) server = values.inline ? new UDPServer(address, module, options) : new ThreadingUDPServer(address, module, options);
  else server = values.inline ? new TCPServer(address, module, options) : new ThreadingTCPServer(address, module, options);
  if (processes !== undefined && values.pubsub === undefined) coreOf(server).rooms.refuseWithout(`served by --processes ${processes}`);
  return { server, ...rest };
}

function readFileOrUsage(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path}: ${(error as Error).message}`);
  }
}
