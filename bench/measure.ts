// Owns one measurement: a runStress load against one listener of a running server, on
// 127.0.0.1 only, with the server's CPU and memory sampled around it — the same client and the
// same bookkeeping for every server, which is what makes the ratios fair.

import { runStress } from '../src/stress/index.js';
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
  };
}
