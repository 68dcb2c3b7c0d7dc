// Owns `sockserv stress`: parses the command line into StressOptions, refuses non-loopback targets
// unless --allow-remote, runs the load with a live progress line on a terminal, prints the report
// (or JSON) and turns the result into an exit code: 0 ok, 1 errors or a missed threshold, 2 bad
// arguments (UsageError, printed by main.ts).

import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { UsageError, parseCount } from '../src/cli/usage-error.js';
import { parseMixFile, parseMixSpec } from './mix-spec.js';
import { type MixEntry, STRESS_DEFAULTS, type StressFraming, type StressOptions, resolveStressOptions } from './options.js';
import { ProgressLine } from './progress.js';
import { formatErrors, formatJson, formatReport } from './report.js';
import { runStress } from './run.js';
import { checkTargetHost, parseTarget } from './target.js';

export const STRESS_USAGE = `usage: sockserv stress HOST:PORT [--connections C] [--requests N | --duration S]
         [--pipeline P] [--payload TEXT | --payload-file F | --mix SPEC | --mix-file F]
         [--framing line|length|raw|resp] [--new-connection] [--rate R] [--warmup S]
         [--timeout MS] [--json] [--max-p99 MS] [--min-rps R] [--allow-remote]
  Load-tests a framed TCP server: C connections (default ${STRESS_DEFAULTS.connections}), P requests outstanding on
  each (default ${STRESS_DEFAULTS.pipeline}), for N requests in total or S seconds (default ${STRESS_DEFAULTS.durationSec}). Reports throughput,
  latency p50/p90/p99/p99.9/max, errors by kind, bytes and a per-second timeline; --json
  prints the result as JSON on stdout instead. The payload defaults to "ping".
  --framing line (default): payload + "\\n"; a reply ends at "\\n".
            length: 32-bit big-endian length prefix, both ways.
            raw: the payload is sent as is, and every payload-length bytes received count
            as one reply (the rule of an echo server).
            resp: the payload's words as a RESP array of bulk strings ("GET k"); a reply is
            one RESP value (an -ERR reply counts as a reply).
  --mix 'PING:99,HASH x:1'  a mixed load: PAYLOAD:WEIGHT, comma-separated; requests go in a
            fixed weighted round-robin order (the same in every run), and the report adds
            each kind's count, errors and latency.  --mix-file F: one "WEIGHT PAYLOAD" a line.
  --new-connection  one request per connection: each of the C slots connects, sends one
            request, reads its reply and closes, again and again; latency includes the
            connect, and the report gives connections/s. Needs --pipeline 1.
  --rate R  open loop: R requests/s in total on a fixed schedule; latency counts from each
            request's intended send time, so a stalled server cannot hide (no coordinated
            omission). P then caps what is outstanding per connection.
  --warmup S  seconds of load before measuring.  --timeout MS  reply timeout (default ${STRESS_DEFAULTS.timeoutMs}).
  Exit 0 on success; 1 on any error, no completed request, or a missed --max-p99 (ms) or
  --min-rps; 2 on bad arguments. Only loopback targets (127.0.0.0/8, ::1, localhost) are
  accepted unless --allow-remote is given: this tool generates load as fast as it can, and
  aimed at the wrong address that is a denial-of-service attack, not a benchmark.`;

interface CliRun {
  options: StressOptions;
  target: string;
  json: boolean;
  maxP99: number | undefined;
  minRps: number | undefined;
}

export async function stress(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${STRESS_USAGE}\n`);
    return 0;
  }
  const run = await parseStressArgs(argv);
  const progress = new ProgressLine(process.stderr);
  const controller = new AbortController();
  const interrupt = () => controller.abort();
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  let result;
  try {
    result = await runStress({
      ...run.options,
      signal: controller.signal,
      ...(progress.enabled ? { onProgress: progress.update } : {}),
    });
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    progress.clear();
  }
  const { options } = run;
  process.stdout.write(
    run.json
      ? formatJson(result)
      : formatReport(result, {
          target: run.target,
          connections: options.connections,
          pipeline: options.pipeline,
          framing: options.framing,
          payloadBytes: options.payload.length,
          rate: options.rate,
          warmupSec: options.warmupSec,
          mixKinds: options.mix?.length,
          newConnection: options.newConnection,
        }),
  );
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
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        connections: { type: 'string', short: 'c' },
        requests: { type: 'string', short: 'n' },
        duration: { type: 'string', short: 'd' },
        pipeline: { type: 'string', short: 'p' },
        payload: { type: 'string' },
        'payload-file': { type: 'string' },
        mix: { type: 'string' },
        'mix-file': { type: 'string' },
        'new-connection': { type: 'boolean' },
        framing: { type: 'string' },
        rate: { type: 'string' },
        warmup: { type: 'string' },
        timeout: { type: 'string' },
        json: { type: 'boolean' },
        'max-p99': { type: 'string' },
        'min-rps': { type: 'string' },
        'allow-remote': { type: 'boolean' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) throw new UsageError('stress takes exactly one target, HOST:PORT');
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
