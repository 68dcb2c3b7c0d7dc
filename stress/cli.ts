// Owns `sockserv stress`: parses the command line into StressOptions, refuses non-loopback targets
// unless --allow-remote, runs the load showing its header and a progress line a second on stderr
// (progress.ts), prints the report (or JSON) on stdout and turns the result into an exit code: 0
// ok, 1 errors or a missed threshold, 2 bad arguments (UsageError, printed by main.ts).

import { readFile } from 'node:fs/promises';
import { type CommandSpec, type OptionValues, commandHelp, parseCommand } from '../src/cli/args.js';
import { UsageError, parseCount } from '../src/cli/usage-error.js';
import { parseMixFile, parseMixSpec } from './mix-spec.js';
import { type MixEntry, STRESS_DEFAULTS, type StressFraming, type StressOptions, resolveStressOptions } from './options.js';
import { ProgressLine } from './progress.js';
import { type ReportContext, formatErrors, formatHeader, formatJson, formatReport } from './report.js';
import { runStress } from './run.js';
import { checkTargetHost, parseTarget } from './target.js';

/** `sockserv stress`: its options, from which the parser and --help are both made (src/cli/args.ts). */
const STRESS = {
  name: 'stress',
  args: 'HOST:PORT',
  about:
    'Load-tests a framed TCP server: C connections, each keeping P requests outstanding, for N requests or S seconds. ' +
    'Prints its header at once and a progress line every second on stderr, then the report on stdout: throughput, ' +
    'latency p50/p90/p99/p99.9/max, errors by kind, bytes and a per-second timeline.',
  options: {
    connections: { type: 'string', short: 'c', value: 'C', default: STRESS_DEFAULTS.connections, group: 'Load', help: 'connections open at once' },
    pipeline: { type: 'string', short: 'p', value: 'P', default: STRESS_DEFAULTS.pipeline, group: 'Load', help: 'requests outstanding on each connection (with --rate: at most)' },
    requests: { type: 'string', short: 'n', value: 'N', group: 'Load', help: 'stop after N requests in total (instead of --duration)' },
    duration: { type: 'string', short: 'd', value: 'S', default: STRESS_DEFAULTS.durationSec, group: 'Load', help: 'seconds to measure for' },
    rate: {
      type: 'string',
      value: 'R',
      group: 'Load',
      help: "open loop: R requests/s in total on a fixed schedule; latency counts from each request's intended send time, so a stalled server cannot hide",
    },
    warmup: { type: 'string', value: 'S', default: STRESS_DEFAULTS.warmupSec, group: 'Load', help: 'seconds of load before measuring' },
    'new-connection': {
      type: 'boolean',
      group: 'Load',
      help: 'one request per connection: connect, send, read the reply, close, again; latency includes the connect, the report gives connections/s (needs --pipeline 1)',
    },
    payload: { type: 'string', value: 'TEXT', default: 'ping', group: 'Requests', help: 'the request body' },
    'payload-file': { type: 'string', value: 'F', group: 'Requests', help: "the request body: the file's bytes" },
    mix: {
      type: 'string',
      value: 'SPEC',
      group: 'Requests',
      help: "several kinds of request, 'PAYLOAD:WEIGHT,...', sent in a fixed weighted round-robin order; the report adds each kind's count, errors and latency",
    },
    'mix-file': { type: 'string', value: 'F', group: 'Requests', help: 'the same, one "WEIGHT PAYLOAD" a line' },
    framing: { type: 'string', value: 'F', default: STRESS_DEFAULTS.framing, group: 'Requests', help: 'line, length, raw or resp: how requests and replies are framed, as below' },
    timeout: { type: 'string', value: 'MS', default: STRESS_DEFAULTS.timeoutMs, group: 'Requests', help: 'how long a reply (or a connect) may take before it counts as an error' },
    json: { type: 'boolean', group: 'Output', help: 'print the result as JSON on stdout instead of the report' },
    'max-p99': { type: 'string', value: 'MS', group: 'Output', help: 'exit 1 if the p99 latency is above MS milliseconds' },
    'min-rps': { type: 'string', value: 'R', group: 'Output', help: 'exit 1 if the throughput is below R requests/s' },
    'allow-remote': { type: 'boolean', group: 'Output', help: 'aim at a target that is not a loopback address (see below)' },
  },
  notes: `Framing:
  line    the payload + "\\n"; a reply ends at "\\n".
  length  a 32-bit big-endian length prefix, both ways.
  raw     the payload as is, and every payload-length bytes received count as one reply (the
          rule of an echo server).
  resp    the payload's words as a RESP array of bulk strings ("GET k"); a reply is one RESP value
          (an -ERR reply counts as a reply).

Exit status: 0 on success; 1 on any error, no completed request, or a missed --max-p99 or
--min-rps; 2 on bad arguments. Only loopback targets (127.0.0.0/8, ::1, localhost) are accepted
unless --allow-remote is given: this tool generates load as fast as it can, and aimed at the wrong
address that is a denial-of-service attack, not a benchmark.`,
} satisfies CommandSpec;

interface CliRun {
  options: StressOptions;
  target: string;
  json: boolean;
  maxP99: number | undefined;
  minRps: number | undefined;
}

export async function stress(argv: string[]): Promise<number> {
  const parsed = parseCommand(STRESS, argv);
  if (parsed.help) {
    process.stdout.write(commandHelp(STRESS));
    return 0;
  }
  const run = await checkStressArgs(parsed.values, parsed.positionals);
  const { options } = run;
  const context: ReportContext = {
    target: run.target,
    connections: options.connections,
    pipeline: options.pipeline,
    framing: options.framing,
    payloadBytes: options.payload.length,
    rate: options.rate,
    warmupSec: options.warmupSec,
    mixKinds: options.mix?.length,
    newConnection: options.newConnection,
  };
  // stderr shows the run as it goes (also when stdout is piped to a file); stdout gets the report.
  const progress = new ProgressLine(process.stderr);
  progress.header(formatHeader(context));
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let result;
  try {
    result = await runStress({ ...options, signal: controller.signal, onProgress: progress.update });
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    progress.clear();
  }
  process.stdout.write(run.json ? formatJson(result) : formatReport(result, context));
  const failures: string[] = [];
  if (controller.signal.aborted) failures.push('interrupted before the end of the run');
  const e = result.errors;
  const errorCount = e.refused + e.reset + e.timeout + e.badReply + e.other;
  if (errorCount > 0) failures.push(`${errorCount} error${errorCount === 1 ? '' : 's'}: ${formatErrors(e)}`);
  if (result.requests === 0) failures.push('no request completed');
  if (run.maxP99 !== undefined && result.latencyMs.p99 > run.maxP99) {
    failures.push(`p99 latency ${result.latencyMs.p99} ms is above --max-p99 ${run.maxP99} ms`);
  }
  if (run.minRps !== undefined && result.rps < run.minRps) {
    failures.push(`throughput ${Math.round(result.rps)} req/s is below --min-rps ${run.minRps}`);
  }
  for (const failure of failures) process.stderr.write(`sockserv stress: FAIL: ${failure}\n`);
  return failures.length === 0 ? 0 : 1;
}

/** Turns argv into a checked run, or throws UsageError. Resolves the host to check it is loopback. */
export async function parseStressArgs(argv: string[]): Promise<CliRun> {
  const parsed = parseCommand(STRESS, argv);
  if (parsed.help) throw new UsageError('--help describes no run');
  return checkStressArgs(parsed.values, parsed.positionals);
}

async function checkStressArgs(values: OptionValues<(typeof STRESS)['options']>, positionals: string[]): Promise<CliRun> {
  if (positionals.length !== 1) throw new UsageError('takes exactly one target, HOST:PORT');
  if (values.requests !== undefined && values.duration !== undefined) {
    throw new UsageError('--requests and --duration exclude each other');
  }
  const bodies = (['payload', 'payload-file', 'mix', 'mix-file'] as const).filter((flag) => values[flag] !== undefined);
  if (bodies.length > 1) throw new UsageError(`--${bodies[0]} and --${bodies[1]} exclude each other`);
  const framing = values.framing ?? STRESS_DEFAULTS.framing;
  if (framing !== 'line' && framing !== 'length' && framing !== 'raw' && framing !== 'resp') {
    throw new UsageError(`--framing must be line, length, raw or resp (got "${framing}")`);
  }
  let target;
  try {
    target = parseTarget(positionals[0]!);
    await checkTargetHost(target.host, values['allow-remote'] === true);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const mix = await readMix(values.mix, values['mix-file']);
  const options: StressOptions = {
    host: target.host,
    port: target.port,
    connections: parseCount('--connections', values.connections, 1) ?? STRESS_DEFAULTS.connections,
    pipeline: parseCount('--pipeline', values.pipeline, 1) ?? STRESS_DEFAULTS.pipeline,
    payload: mix ? mix[0]!.payload : await readPayload(values.payload, values['payload-file']),
    framing: framing as StressFraming,
  };
  if (mix) options.mix = mix;
  if (values['new-connection'] === true) options.newConnection = true;
  const requests = parseCount('--requests', values.requests, 1);
  if (requests !== undefined) options.requests = requests;
  const durationSec = parseDecimal('--duration', values.duration, true);
  if (durationSec !== undefined) options.durationSec = durationSec;
  const rate = parseDecimal('--rate', values.rate, true);
  if (rate !== undefined) options.rate = rate;
  const warmupSec = parseDecimal('--warmup', values.warmup, false);
  if (warmupSec !== undefined) options.warmupSec = warmupSec;
  const timeoutMs = parseCount('--timeout', values.timeout, 1);
  if (timeoutMs !== undefined) options.timeoutMs = timeoutMs;
  try {
    resolveStressOptions(options);
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/^stress: /, ''));
  }
  return {
    options,
    target: positionals[0]!,
    json: values.json === true,
    maxP99: parseDecimal('--max-p99', values['max-p99'], true),
    minRps: parseDecimal('--min-rps', values['min-rps'], false),
  };
}

async function readPayload(text: string | undefined, file: string | undefined): Promise<Buffer> {
  if (file === undefined) return Buffer.from(text ?? 'ping');
  try {
    return await readFile(file);
  } catch (error) {
    throw new UsageError(`cannot read --payload-file: ${(error as Error).message}`);
  }
}

async function readMix(spec: string | undefined, file: string | undefined): Promise<MixEntry[] | undefined> {
  try {
    if (spec !== undefined) return parseMixSpec(spec);
    if (file !== undefined) return parseMixFile(await readFile(file, 'utf8'));
    return undefined;
  } catch (error) {
    throw new UsageError(file !== undefined && !(error instanceof RangeError) ? `cannot read --mix-file: ${(error as Error).message}` : (error as Error).message);
  }
}

/** A decimal number option (> 0 when `positive`, else >= 0), or UsageError naming the flag. */
function parseDecimal(flag: string, value: string | undefined, positive: boolean): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || (positive && number <= 0)) {
    throw new UsageError(`${flag} must be a number ${positive ? '> 0' : '>= 0'} (got "${value}")`);
  }
  return number;
}
