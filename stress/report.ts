// Owns how a result is shown: the human report (throughput, latency percentiles, errors by kind,
// bytes, each kind of a mixed load, per-second timeline) and the JSON form (the StressResult
// itself, for scripts and CI).

import { ERROR_KINDS } from './error-kinds.js';
import type { KindResult, StressFraming, StressResult } from './options.js';

/** What the report says about the run besides its result. */
export interface ReportContext {
  target: string;
  connections: number;
  pipeline: number;
  framing: StressFraming;
  payloadBytes: number;
  rate?: number | undefined;
  warmupSec?: number | undefined;
  /** Kinds in the mix, when the load was mixed. */
  mixKinds?: number | undefined;
  /** One request per connection. */
  newConnection?: boolean | undefined;
}

export function formatJson(result: StressResult): string {
  return `${JSON.stringify(result, null, 2)}\n`;
}

/** The report's first line, what the run measures: shown on stderr as the run starts, and atop the report. */
export function formatHeader(context: ReportContext): string {
  const load =
    context.rate === undefined ? 'closed loop' : `open loop at ${count(context.rate)} req/s (latency from intended send time)`;
  const shape = context.newConnection
    ? `${context.connections} concurrent one-request connections`
    : `${context.connections} connections × pipeline ${context.pipeline}`;
  const body = context.mixKinds ? `a mix of ${context.mixKinds} kinds` : `${context.payloadBytes}-byte payload`;
  return `sockserv stress ${context.target}: ${shape}, ${context.framing} framing, ${body}, ${load}` + (context.warmupSec ? `, ${context.warmupSec} s warmup` : '');
}

export function formatReport(result: StressResult, context: ReportContext): string {
  const { latencyMs: l } = result;
  const lines = [
    formatHeader(context),
    '',
    `  requests   ${count(result.requests)} in ${result.durationSec.toFixed(2)} s = ${count(Math.round(result.rps))} req/s` +
      (result.connectionsPerSec !== undefined
        ? ` = ${count(Math.round(result.connectionsPerSec))} connections/s (one request each; latency includes the connect)`
        : ''),
    `  latency    p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}  p99.9 ${ms(l.p999)}  max ${ms(l.max)} ms` +
      `   (min ${ms(l.min)}, mean ${ms(l.mean)})`,
    `  errors     ${formatErrors(result.errors)}`,
    `  bytes      sent ${bytes(result.bytesSent)}, received ${bytes(result.bytesReceived)}` +
      (result.durationSec > 0
        ? `  (${bytes(result.bytesSent / result.durationSec)}/s out, ${bytes(result.bytesReceived / result.durationSec)}/s in)`
        : ''),
  ];
  if (result.kinds !== undefined) lines.push('', ...kindTable(result.kinds));
  if (result.timeline.length > 0) {
    lines.push('', '  second    requests    p99 ms    errors');
    for (const s of result.timeline) {
      lines.push(
        `  ${String(s.second).padStart(6)}  ${count(s.requests).padStart(10)}  ${ms(s.p99Ms).padStart(8)}  ${count(s.errors).padStart(8)}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Each kind of a mixed load: its share, count, errors and latency. */
function kindTable(kinds: KindResult[]): string[] {
  const width = Math.max(4, ...kinds.map((kind) => kind.name.length));
  const lines = [
    `  ${'kind'.padEnd(width)}  weight    requests      p50      p90      p99      max ms  errors`,
  ];
  for (const kind of kinds) {
    const l = kind.latencyMs;
    lines.push(
      `  ${kind.name.padEnd(width)}  ${count(kind.weight).padStart(6)}  ${count(kind.requests).padStart(10)}` +
        `  ${ms(l.p50).padStart(7)}  ${ms(l.p90).padStart(7)}  ${ms(l.p99).padStart(7)}  ${ms(l.max).padStart(7)}` +
        `     ${formatErrors(kind.errors)}`,
    );
  }
  return lines;
}

export function formatErrors(errors: StressResult['errors']): string {
  const parts = ERROR_KINDS.filter((kind) => errors[kind] > 0).map((kind) => `${kind} ${count(errors[kind])}`);
  return parts.length === 0 ? 'none' : parts.join(', ');
}

const COUNT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function count(value: number): string {
  return COUNT.format(value);
}

/** Milliseconds with three significant digits (at least µs resolution). */
function ms(value: number): string {
  if (value === 0) return '0';
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  if (value >= 1) return value.toFixed(2);
  return value.toFixed(3);
}

function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}
