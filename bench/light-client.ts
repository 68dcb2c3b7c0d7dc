// Owns the bench's light client: bench/loadgen/epoll-client.c, a one-thread epoll load generator
// in C, built here with the machine's C compiler (cached beside the compiled bench, rebuilt when
// the source is newer). On 2 cores the client's own CPU compresses every ratio — the stress tool
// (Node) costs tens of µs per request, this one a few — so the issue targets read rows measured
// with it. measureLight() runs it against one listener and returns a Measurement like measure()'s.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningServer } from './children.js';
import { type Measurement, round } from './results.js';
import { REPO_ROOT } from './servers.js';

const SOURCE = join(REPO_ROOT, 'bench/loadgen/epoll-client.c');
const BINARY = join(dirname(fileURLToPath(import.meta.url)), 'loadgen/epoll-client');

/** What the light client is, for reports. */
export const LIGHT_CLIENT = 'bench/loadgen/epoll-client.c (one thread, epoll, C)';

/** The built client's path, or why there is none (no C compiler). */
export function lightClient(): { path: string } | { missing: string } {
  try {
    if (!existsSync(BINARY) || statSync(BINARY).mtimeMs < statSync(SOURCE).mtimeMs) {
      mkdirSync(dirname(BINARY), { recursive: true });
      execFileSync('cc', ['-O2', '-o', BINARY, SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    return { path: BINARY };
  } catch (error) {
    return { missing: `no light client: building ${SOURCE} with cc failed (${(error as Error).message.split('\n')[0]})` };
  }
}

export interface LightLoad {
  connections: number;
  pipeline: number;
  line: string;
  expect: string;
  /** A second kind, mixed in a fixed weighted order per connection: [weight of line, weight of line2]. */
  line2?: { line: string; expect: string; weights: [number, number] };
  churn?: boolean;
  durationSec: number;
  warmupSec: number;
}

interface KindOut {
  count: number;
  errors: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** One run of the light client; `kinds[1]` is the second line's, when there is one. */
export async function measureLight(client: string, server: RunningServer, port: number, load: LightLoad, signal: AbortSignal): Promise<Measurement[]> {
  const args = ['--port', String(port), '--conns', String(load.connections), '--pipeline', String(load.pipeline)];
  args.push('--duration', String(load.durationSec), '--warmup', String(load.warmupSec), '--line', load.line, '--expect', load.expect);
  if (load.line2) args.push('--line2', load.line2.line, '--expect2', load.line2.expect, '--weights', load.line2.weights.join(':'));
  if (load.churn) args.push('--churn');
  const cpuBefore = server.cpuSeconds();
  const started = performance.now();
  const stdout = await run(client, args, signal, (load.durationSec + load.warmupSec) * 1000 + 10_000);
  const wallSec = (performance.now() - started) / 1000;
  const out = JSON.parse(stdout) as { requests: number; seconds: number; cpuSec: number; otherErrors: number; kinds: KindOut[] };
  const serverCores = round((server.cpuSeconds() - cpuBefore) / wallSec, 2);
  return out.kinds.map((kind, i) => ({
    connections: load.connections,
    pipeline: load.pipeline,
    requests: kind.count,
    durationSec: out.seconds,
    rps: round(kind.count / out.seconds, 1),
    latencyMs: { min: kind.min, mean: kind.mean, p50: kind.p50, p90: kind.p90, p99: kind.p99, p999: kind.p999, max: kind.max },
    errors: { refused: 0, reset: 0, timeout: 0, badReply: kind.errors, other: i === 0 ? out.otherErrors : 0 },
    serverCores,
    clientCores: round(out.cpuSec / wallSec, 2),
    serverRssMiB: round(server.rssBytes() / 2 ** 20, 1),
    timeline: [],
    ...(load.churn ? { newConnection: true } : {}),
  }));
}

/** Runs the client to its end (bounded by `timeoutMs`); its stdout. */
function run(command: string, args: string[], signal: AbortSignal, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const abort = () => child.kill('SIGKILL');
    signal.addEventListener('abort', abort, { once: true });
    child.on('exit', (code) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
      if (code !== 0) reject(new Error(`epoll-client exited ${code}: ${stderr.trim()}`));
      else resolve(stdout);
    });
    child.on('error', reject);
  });
}
