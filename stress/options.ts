// Owns the stress tool's contract: the StressOptions a caller passes, the StressResult it gets
// back, their defaults (in one place) and the checks that turn options into a complete, valid
// run configuration. The benchmark harness depends on these shapes: extend them, never change them.

import { weightedOrder } from './request-schedule.js';
import type { StressFraming } from './request-wire.js';

export type { StressFraming };

/** One kind of request in a mixed load: its body and its share of the requests. */
export interface MixEntry {
  /** The request body, framed like `payload` (for 'resp': words separated by spaces). */
  payload: Buffer;
  /** A whole number >= 1: the kind gets weight / (sum of weights) of the requests. */
  weight: number;
  /** How reports name the kind; defaults to the payload as text (shortened). */
  name?: string;
}

/** Why a request (or a connection attempt) failed. */
export type ErrorKind = 'refused' | 'reset' | 'timeout' | 'badReply' | 'other';

export interface StressOptions {
  host: string;
  port: number;
  /** Connections kept open at once. Default 50. */
  connections: number;
  /** Total measured requests across connections; the run ends once all have an outcome. */
  requests?: number;
  /** Measured run time in seconds (after warmup). With neither requests nor durationSec: 10 s. */
  durationSec?: number;
  /** Requests outstanding per connection (closed loop), or at most outstanding (open loop). Default 1. */
  pipeline: number;
  /**
   * One request body; the tool frames it ('line' appends "\n", 'length' prefixes 4 bytes, 'resp'
   * sends its space-separated words as a RESP array of bulk strings). Ignored when `mix` is given.
   */
  payload: Buffer;
  /**
   * A mixed load: requests of several kinds in proportion to their weights, in a fixed order (a
   * smooth weighted round-robin shared by all connections, so the first N requests of every run
   * are the same N). The result then also reports each kind apart (`kinds`).
   */
  mix?: MixEntry[];
  /**
   * One request per connection: each of the `connections` slots connects, sends one request,
   * reads its reply and closes, then starts over. Latency counts from the connect; `pipeline` must
   * be 1. Measures connection churn (the result's `connectionsPerSec`).
   */
  newConnection?: boolean;
  /**
   * 'line': request + "\n", a reply ends at "\n" (a "\r" before it is dropped).
   * 'length': 32-bit big-endian length prefix both ways.
   * 'raw': the payload as is; every payload.length bytes received are one reply (an echo's rule).
   * 'resp': the payload's words as a RESP array of bulk strings (`PING` → `*1\r\n$4\r\nPING\r\n`);
   *   a reply is one whole RESP value, handed to expectReply as received (`+PONG\r\n`). An error
   *   reply (`-ERR …`) is a reply like any other: check it with expectReply.
   */
  framing: StressFraming;
  /**
   * Open loop: total requests per second across connections, sent on a fixed schedule whatever
   * the replies do. Latency counts from each request's intended send time, so a stalled server
   * shows up in the latency instead of slowing the load (no coordinated omission).
   */
  rate?: number;
  /** Seconds of load before measuring; nothing sent in them counts in the result. Default 0. */
  warmupSec?: number;
  /** Per-request reply timeout (and connect timeout) in ms → error kind 'timeout'. Default 10 000. */
  timeoutMs?: number;
  /** Checks each reply (framing removed) against its request's payload; false → error kind 'badReply'. */
  expectReply?: (reply: Buffer, request: Buffer) => boolean;
  /** Called about once a second while the run goes on. */
  onProgress?: (sample: ProgressSample) => void;
  /** Ends the run early; runStress then resolves with what was measured so far. */
  signal?: AbortSignal;
}

export interface StressResult {
  /** Measured requests that got a good reply (the latency samples). */
  requests: number;
  /** Measured time: from the end of warmup until the last measured request had its outcome. */
  durationSec: number;
  /** requests / durationSec. */
  rps: number;
  /** Over good replies. Closed loop: from the actual send; open loop: from the intended send. */
  latencyMs: { min: number; mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  /**
   * Failed measured requests by kind; 'refused' (and 'timeout' / 'other' while connecting) count
   * failed connection attempts instead. When a connection breaks or its oldest request times out,
   * every request outstanding on it fails with that kind (FIFO replies cannot be matched after a loss).
   */
  errors: { refused: number; reset: number; timeout: number; badReply: number; other: number };
  /** Bytes of the measured requests, framing included. */
  bytesSent: number;
  /** Bytes received from the start of measurement until the end of the run. */
  bytesReceived: number;
  /** One entry per second of measurement; `second` is 1 for the first. The last one may be partial. */
  timeline: Array<{ second: number; requests: number; p99Ms: number; errors: number }>;
  /** With `mix`: each kind's own count, errors and latency, in the order the mix listed them. */
  kinds?: KindResult[];
  /** With `newConnection`: connections per second, each carrying one request (equals rps). */
  connectionsPerSec?: number;
}

/** One kind of a mixed load. Failed connection attempts belong to no kind (see `errors`). */
export interface KindResult {
  name: string;
  weight: number;
  /** Measured good replies of this kind. */
  requests: number;
  errors: StressResult['errors'];
  latencyMs: StressResult['latencyMs'];
}

/** What onProgress gets, about once a second. */
export interface ProgressSample {
  phase: 'warmup' | 'measure' | 'drain';
  /** Seconds since the load started (warmup included). */
  elapsedSec: number;
  /** Measured good replies so far. */
  requests: number;
  /** Good replies per second since the previous sample (warmup ones included). */
  rps: number;
  /** p99 of the last complete second of measurement; 0 before there is one. */
  p99Ms: number;
  /** Measured errors so far, all kinds. */
  errors: number;
  /** Requests sent and not yet answered. */
  inFlight: number;
  /** Connections open now. */
  connections: number;
}

export const STRESS_DEFAULTS = Object.freeze({
  connections: 50,
  pipeline: 1,
  durationSec: 10,
  warmupSec: 0,
  timeoutMs: 10_000,
  framing: 'line' as StressFraming,
});

/** Largest pipeline: every connection keeps a send-time slot per outstanding request. */
const MAX_PIPELINE = 65_536;

/** StressOptions with every default filled in; absent limits are Infinity. */
export interface ResolvedStressOptions {
  host: string;
  port: number;
  connections: number;
  requests: number;
  durationMs: number;
  pipeline: number;
  payload: Buffer;
  /** The checked mix, or undefined for a single payload. */
  mix: Array<Required<MixEntry>> | undefined;
  newConnection: boolean;
  framing: StressFraming;
  rate: number | undefined;
  warmupMs: number;
  timeoutMs: number;
  expectReply: ((reply: Buffer, request: Buffer) => boolean) | undefined;
  onProgress: ((sample: ProgressSample) => void) | undefined;
  signal: AbortSignal | undefined;
}

/** Fills in defaults and checks every option; throws RangeError / TypeError naming the option. */
export function resolveStressOptions(options: StressOptions): ResolvedStressOptions {
  if (typeof options.host !== 'string' || options.host === '') throw new TypeError('stress: host must be a non-empty string');
  const port = integer('port', options.port, 1, 65_535);
  const connections = integer('connections', options.connections ?? STRESS_DEFAULTS.connections, 1);
  const pipeline = integer('pipeline', options.pipeline ?? STRESS_DEFAULTS.pipeline, 1, MAX_PIPELINE);
  const requests = options.requests === undefined ? Infinity : integer('requests', options.requests, 1);
  const durationSec =
    options.durationSec !== undefined
      ? positive('durationSec', options.durationSec)
      : options.requests === undefined
        ? STRESS_DEFAULTS.durationSec
        : Infinity;
  const framing = options.framing ?? STRESS_DEFAULTS.framing;
  if (framing !== 'line' && framing !== 'length' && framing !== 'raw' && framing !== 'resp') {
    throw new RangeError(`stress: framing must be line, length, raw or resp (got ${JSON.stringify(framing)})`);
  }
  const mix = options.mix === undefined ? undefined : resolveMix(options.mix, framing);
  const payload = mix === undefined ? checkPayload(options.payload, framing, 'payload') : mix[0]!.payload;
  const newConnection = options.newConnection === true;
  if (newConnection && pipeline !== 1) {
    throw new RangeError('stress: newConnection sends one request per connection: pipeline must be 1');
  }
  for (const name of ['expectReply', 'onProgress'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new TypeError(`stress: ${name} must be a function`);
    }
  }
  return {
    host: options.host,
    port,
    connections,
    requests,
    durationMs: durationSec * 1000,
    pipeline,
    payload,
    mix,
    newConnection,
    framing,
    rate: options.rate === undefined ? undefined : positive('rate', options.rate),
    warmupMs: (options.warmupSec === undefined ? STRESS_DEFAULTS.warmupSec : nonNegative('warmupSec', options.warmupSec)) * 1000,
    timeoutMs: options.timeoutMs === undefined ? STRESS_DEFAULTS.timeoutMs : positive('timeoutMs', options.timeoutMs),
    expectReply: options.expectReply,
    onProgress: options.onProgress,
    signal: options.signal,
  };
}

/** Most kinds in a mix (a kind is a 16-bit index on the hot path). */
const MAX_MIX_KINDS = 1024;

function resolveMix(mix: unknown, framing: StressFraming): Array<Required<MixEntry>> {
  if (!Array.isArray(mix) || mix.length === 0 || mix.length > MAX_MIX_KINDS) {
    throw new RangeError(`stress: mix must be a list of 1 to ${MAX_MIX_KINDS} entries`);
  }
  const entries = mix.map((entry: MixEntry, i) => {
    const payload = checkPayload(entry?.payload, framing, `mix[${i}].payload`);
    const weight = integer(`mix[${i}].weight`, entry.weight, 1, 1_000_000);
    if (entry.name !== undefined && typeof entry.name !== 'string') throw new TypeError(`stress: mix[${i}].name must be a string`);
    return { payload, weight, name: entry.name ?? kindName(payload) };
  });
  weightedOrder(entries.map((entry) => entry.weight)); // throws when one round of the order is too long
  return entries;
}

/** A payload as a report names it: its text, control bytes escaped, at most 40 characters. */
function kindName(payload: Buffer): string {
  const text = JSON.stringify(payload.toString('utf8')).slice(1, -1);
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

function checkPayload(value: unknown, framing: StressFraming, name: string): Buffer {
  if (!(value instanceof Uint8Array)) throw new TypeError(`stress: ${name} must be a Buffer`);
  const payload = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (framing === 'line' && payload.includes(0x0a)) {
    throw new RangeError(`stress: a line-framed ${name} must not contain "\\n" (the server would see two requests)`);
  }
  if (framing === 'raw' && payload.length === 0) {
    throw new RangeError(`stress: raw framing needs a non-empty ${name} (each reply is payload-length bytes)`);
  }
  if (framing === 'resp' && payload.toString('latin1').trim() === '') {
    throw new RangeError(`stress: a resp ${name} needs at least one word (the command)`);
  }
  if (framing === 'length' && payload.length > 0xffff_ffff) throw new RangeError(`stress: ${name} too long for a 32-bit length`);
  return payload;
}

function integer(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`stress: ${name} must be a whole number from ${min} to ${max} (got ${String(value)})`);
  }
  return value;
}

function positive(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`stress: ${name} must be a finite number > 0 (got ${String(value)})`);
  }
  return value;
}

function nonNegative(name: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(`stress: ${name} must be a finite number >= 0 (got ${String(value)})`);
  }
  return value;
}
