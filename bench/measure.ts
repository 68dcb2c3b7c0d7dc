// Owns one measurement: a runStress load against one listener of a running server, on
// 127.0.0.1 only, with the server's CPU and memory sampled around it — the same client and the
// same bookkeeping for every server, which is what makes the ratios fair. A mixed load also
// yields one Measurement per kind (kindMeasurement), to put a kind in a table of its own.

import { type MixEntry, runStress } from '../stress/index.js';
import type { RunningServer } from './children.js';
import { type Measurement, round } from './results.js';

export interface Load {
  connections: number;
  pipeline: number;
  payload: Buffer;
  durationSec: number;
  warmupSec: number;
  timeoutMs: number;
  rate?: number;
  /** A mixed load (payload is then unused): per-kind results land in Measurement.kinds. */
  mix?: MixEntry[];
  /** One request per connection: rps is then connections per second. */
  newConnection?: boolean;
  expectReply: (reply: Buffer, request: Buffer) => boolean;
}

/** A reply check for servers that answer every request with the same bytes. */
export function expectExactly(expected: string): (reply: Buffer) => boolean {
  const bytes = Buffer.from(expected);
  return (reply) => reply.equals(bytes);
}

export async function measure(server: RunningServer, port: number, load: Load, signal: AbortSignal): Promise<Measurement> {
  const cpuBefore = server.cpuSeconds();
  const clientBefore = process.cpuUsage();
  const started = performance.now();
  const result = await runStress({
    host: '127.0.0.1',
    port,
    framing: 'line',
    connections: load.connections,
    pipeline: load.pipeline,
    payload: load.payload,
    durationSec: load.durationSec,
    warmupSec: load.warmupSec,
    timeoutMs: load.timeoutMs,
    rate: load.rate,
    expectReply: load.expectReply,
    signal,
    ...(load.mix ? { mix: load.mix } : {}),
    ...(load.newConnection ? { newConnection: true } : {}),
  });
  const wallSec = (performance.now() - started) / 1000;
  const client = process.cpuUsage(clientBefore);
  return {
    connections: load.connections,
    pipeline: load.pipeline,
    ...(load.rate === undefined ? {} : { rate: load.rate }),
    requests: result.requests,
    durationSec: result.durationSec,
    rps: result.rps,
    latencyMs: { ...result.latencyMs },
    errors: { ...result.errors },
    serverCores: round((server.cpuSeconds() - cpuBefore) / wallSec, 2),
    clientCores: round((client.user + client.system) / 1e6 / wallSec, 2),
    serverRssMiB: round(server.rssBytes() / 2 ** 20, 1),
    timeline: result.timeline,
    ...(result.kinds ? { kinds: result.kinds } : {}),
    ...(load.newConnection ? { newConnection: true } : {}),
  };
}

/** The mix's kind `name` of `m` as a Measurement of its own (its count, rate, latency and errors). */
export function kindMeasurement(m: Measurement, name: string): Measurement {
  const kind = m.kinds?.find((k) => k.name === name);
  if (!kind) throw new Error(`no kind "${name}" in the measurement`);
  const { kinds: _kinds, ...rest } = m;
  return {
    ...rest,
    requests: kind.requests,
    rps: m.durationSec > 0 ? round(kind.requests / m.durationSec, 3) : 0,
    latencyMs: { ...kind.latencyMs },
    errors: { ...kind.errors },
    timeline: [],
  };
}
