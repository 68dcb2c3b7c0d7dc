// Owns the shape of bench/results/latest.json — the raw numbers every other output (the
// BENCHMARKS.md tables, the targets, the chart) is derived from — and reading/merging it.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { KindResult } from '../stress/index.js';
import type { Machine } from './machine.js';

/** One runStress run, trimmed to what the report needs plus server/client CPU use. */
export interface Measurement {
  connections: number;
  pipeline: number;
  /** Open-loop request rate, when the load had one. */
  rate?: number;
  requests: number;
  durationSec: number;
  rps: number;
  latencyMs: { min: number; mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  errors: { refused: number; reset: number; timeout: number; badReply: number; other: number };
  /** Average cores the server's process group used during the run (warm-up included). */
  serverCores: number;
  /** Average cores the harness process (the client) used during the run. */
  clientCores: number;
  /** Server resident memory at the end of the run, MiB. */
  serverRssMiB: number;
  timeline: Array<{ second: number; requests: number; p99Ms: number; errors: number }>;
  /** A mixed load: each kind's count, errors and latency (runStress's `kinds`). */
  kinds?: KindResult[];
  /** One request per connection: rps is connections per second. */
  newConnection?: boolean;
}

/** One server in one group: its measurement, or why it has none. */
export interface Row {
  server: string;
  /** A sockserv server (highlighted in the chart). */
  sockserv: boolean;
  measurement?: Measurement;
  /** Responsiveness: the load that saturated the heavy listener meanwhile. */
  load?: Measurement;
  /** Anything else measured for this row (sockserv server.stats() snapshots). */
  extra?: Record<string, unknown>;
  error?: string;
}

/** Servers measured under one load; ratios are against `baseline`. */
export interface Group {
  id: string;
  title: string;
  /** What the bar length and the ratio use: throughput (higher is better) or PING p99 (lower). */
  metric: 'rps' | 'p99Ms';
  baseline: string;
  rows: Row[];
}

/** One server holding many idle connections (scenarios 4 and 6). */
export interface ManyConnections {
  server: string;
  sockserv: boolean;
  target: number;
  opened: number;
  openErrors: number;
  openSec: number;
  rounds: Array<{ answered: number; wrong: number; missing: number; sec: number }>;
  rssIdleMiB: number;
  rssHeldMiB: number;
  bytesPerConnection: number;
}

export type ScenarioId = 'trivial' | 'cpu' | 'responsiveness' | 'connections' | 'cheap' | 'sessions' | 'churn' | 'broadcast' | 'light';
export const SCENARIO_IDS: readonly ScenarioId[] = ['trivial', 'cpu', 'responsiveness', 'connections', 'cheap', 'sessions', 'churn', 'broadcast', 'light'];

export interface ScenarioResult {
  id: ScenarioId;
  title: string;
  /** How the load was made, in a sentence (shown above the table). */
  description: string;
  quick: boolean;
  startedAt: string;
  wallSec: number;
  /** The exact server commands, by server name, run from the repo root. */
  commands: Record<string, string>;
  groups: Group[];
  /** Scenarios 4 and 6: memory with every connection open, per server. */
  connections?: ManyConnections[];
  error?: string;
}

export interface BenchResults {
  machine: Machine;
  /** The command line of the last run. */
  command: string;
  finishedAt: string;
  scenarios: Partial<Record<ScenarioId, ScenarioResult>>;
}

export function readResults(path: string): BenchResults | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as BenchResults;
  } catch {
    return undefined;
  }
}

export function writeResults(path: string, results: BenchResults): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
}

/** Total errors of a measurement (any kind). */
export function errorCount(m: Measurement): number {
  const e = m.errors;
  return e.refused + e.reset + e.timeout + e.badReply + e.other;
}

/** A row that was measured without request errors: only such a row can meet a target. */
export function clean(row: Row): boolean {
  return row.measurement !== undefined && errorCount(row.measurement) === 0;
}

/** " (N request errors)" for a row that had some, else "". */
export function errorNote(row: Row): string {
  const errors = row.measurement ? errorCount(row.measurement) : 0;
  return errors > 0 ? ` (${errors} request errors)` : '';
}

/** What a target shows for a row that was not measured: its failure, or "not measured". */
export function notMeasured(row: Row | undefined): string {
  return row?.error ? `failed: ${row.error.split('\n')[0]}` : 'not measured';
}

/** A throughput target: `server`'s req/s at least `min` times `baseline`'s, in one group of one run. */
export interface RatioTarget {
  name: string;
  group: string;
  server: string;
  baseline: string;
  min: number;
}

/** Judges a RatioTarget on its group's rows (null when either row was not measured). */
export function ratioTarget(t: RatioTarget, group: Group | undefined): TargetResult {
  const goal = `≥ ${t.min.toFixed(2)}× ${t.baseline} req/s`;
  const row = group?.rows.find((r) => r.server === t.server);
  const base = group?.rows.find((r) => r.server === t.baseline);
  if (!row?.measurement || !base?.measurement || base.measurement.rps === 0) {
    return { name: t.name, goal, measured: notMeasured(row ?? base), met: null };
  }
  const ratio = row.measurement.rps / base.measurement.rps;
  return { name: t.name, goal, measured: `${ratio.toFixed(3)}×${errorNote(row)}`, met: ratio >= t.min && clean(row) };
}

/** Numbers are stored rounded: latest.json is read by people too. */
export function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** The value a group compares, or undefined when the row was not measured. */
export function rowValue(group: Group, row: Row): number | undefined {
  const m = row.measurement;
  if (!m) return undefined;
  return group.metric === 'rps' ? m.rps : m.latencyMs.p99;
}

/** The row's value divided by the baseline's (for p99 a ratio below 1 is better). */
export function ratioToBaseline(group: Group, row: Row): number | undefined {
  const base = group.rows.find((r) => r.server === group.baseline);
  const value = rowValue(group, row);
  const baseValue = base ? rowValue(group, base) : undefined;
  if (value === undefined || baseValue === undefined || baseValue === 0) return undefined;
  return value / baseValue;
}

/** One target checked against a run (targets.ts, issue-targets.ts): the verdict BENCHMARKS.md lists. */
export interface TargetResult {
  name: string;
  goal: string;
  measured: string;
  /** null: not measured in this run. */
  met: boolean | null;
}
