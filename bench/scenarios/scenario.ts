// Owns what a scenario is (an id, a title, and a run that returns groups of rows) and the loop
// the throughput scenarios share: start each server in turn, put every group's load on it,
// stop it — a server that fails to start or a load that fails becomes an error row, not a crash.

import { type RunningServer, type ServerSpec, startServer } from '../children.js';
import type { BenchConfig } from '../config.js';
import { type Load, measure } from '../measure.js';
import { type Group, type ManyConnections, type Measurement, type Row, type ScenarioId, errorCount } from '../results.js';
import { commandLine } from '../servers.js';

export interface BenchContext {
  config: BenchConfig;
  /** Aborted on SIGINT: loads stop early, the harness cleans up and exits. */
  signal: AbortSignal;
  log(line: string): void;
}

interface ScenarioOutput {
  /** Replaces the scenario's title when it depends on the config (the connection count). */
  title?: string;
  description: string;
  commands: Record<string, string>;
  groups: Group[];
  connections?: ManyConnections[];
}

export interface Scenario {
  id: ScenarioId;
  title: string;
  run(ctx: BenchContext): Promise<ScenarioOutput>;
}

export function isSockserv(spec: ServerSpec): boolean {
  return spec.name.startsWith('sockserv');
}

/** Starts `spec`, runs `body`, and always stops the server. */
export async function withServer<T>(spec: ServerSpec, body: (server: RunningServer) => Promise<T>): Promise<T> {
  const server = await startServer(spec);
  try {
    return await body(server);
  } finally {
    await server.stop();
  }
}

/** Every server under every group's load, one server process at a time. */
export async function measureEachServer(
  ctx: BenchContext,
  specs: ServerSpec[],
  groups: Group[],
  loadFor: (group: Group) => Load,
  /** Awaited before each server is started (churn: let the last row's TIME_WAIT sockets expire). */
  before?: () => Promise<void>,
): Promise<Record<string, string>> {
  const commands: Record<string, string> = {};
  for (const spec of specs) {
    commands[spec.name] = commandLine(spec);
    await before?.();
    const rowFor = (extra: Partial<Row>): Row => ({ server: spec.name, sockserv: isSockserv(spec), ...extra });
    try {
      await withServer(spec, async (server) => {
        for (const group of groups) {
          ctx.signal.throwIfAborted();
          try {
            const measurement = await measure(server, server.ports[0]!, loadFor(group), ctx.signal);
            group.rows.push(rowFor({ measurement }));
            ctx.log(`${group.id.padEnd(16)} ${spec.name.padEnd(34)} ${describe(measurement)}`);
          } catch (error) {
            if (ctx.signal.aborted) throw error;
            group.rows.push(rowFor({ error: (error as Error).message }));
            ctx.log(`${group.id.padEnd(16)} ${spec.name.padEnd(34)} FAILED: ${(error as Error).message}`);
          }
        }
      });
    } catch (error) {
      if (ctx.signal.aborted) throw error;
      for (const group of groups) {
        if (!group.rows.some((row) => row.server === spec.name)) group.rows.push(rowFor({ error: (error as Error).message }));
      }
      ctx.log(`${spec.name}: ${(error as Error).message}`);
    }
  }
  return commands;
}

export function describe(m: Measurement): string {
  const errors = errorCount(m);
  return (
    `${Math.round(m.rps).toLocaleString('en-US').padStart(9)} req/s  p50 ${m.latencyMs.p50.toFixed(2)} ms  ` +
    `p99 ${m.latencyMs.p99.toFixed(2)} ms  server ${m.serverCores} cores  client ${m.clientCores} cores` +
    (errors > 0 ? `  ERRORS ${errors} ${JSON.stringify(m.errors)}` : '')
  );
}
