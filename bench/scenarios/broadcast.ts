// Scenario 8, broadcast (issue 20): the chat server's fan-out. N connections in one room, each
// sending M lines that reach every member (the sender too), at most W of its own unconfirmed
// (bench/broadcast-load.ts). sockserv's rooms handler (bench/handlers/broadcast.ts: `await
// this.broadcast('all', line)`) on the pool, inline, and in two processes sharing the room through
// Redis; against the hand-written node:net chat server (Buffers, one write per member per data
// event) and a ws broadcast server. Ratio: against node:net.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { type BroadcastResult, runBroadcast } from '../broadcast-load.js';
import type { RunningServer, ServerSpec } from '../children.js';
import type { Group, Measurement } from '../results.js';
import { round } from '../results.js';
import { commandLine, netChat, sockservBroadcast, sockservBroadcastProcesses, wsBroadcast } from '../servers.js';
import { type Scenario, isSockserv, withServer } from './scenario.js';

export const broadcast: Scenario = {
  id: 'broadcast',
  title: 'Broadcast (rooms: one room, every line to every member)',
  async run(ctx) {
    const { config, signal } = ctx;
    const b = config.broadcast;
    const group: Group = {
      id: 'broadcast',
      title: `Fan-out messages/s (the req/s column) and delivery latency: ${b.connections} connections in one room, ${b.messages} lines each, ${b.window} in flight`,
      metric: 'rps',
      baseline: 'node:net chat (Buffers)',
      rows: [],
    };
    const redis = startRedis();
    let processes: ServerSpec | { name: string; error: string };
    try {
      if ('error' in redis) throw new Error(redis.error);
      processes = sockservBroadcastProcesses(await redis.url);
    } catch (error) {
      processes = { name: 'sockserv --processes 2 + Redis', error: (error as Error).message };
    }
    const specs = [sockservBroadcast('pool', config.workers), sockservBroadcast('inline', config.workers), processes, netChat(), wsBroadcast()];
    const commands: Record<string, string> = {};
    try {
      for (const spec of specs) {
        signal.throwIfAborted();
        if ('error' in spec) {
          group.rows.push({ server: spec.name, sockserv: true, error: spec.error });
          ctx.log(`${'broadcast'.padEnd(16)} ${spec.name.padEnd(34)} SKIPPED: ${spec.error}`);
          continue;
        }
        commands[spec.name] = commandLine(spec);
        const sockserv = isSockserv(spec);
        try {
          await withServer(spec, async (server) => {
            const cpuBefore = server.cpuSeconds();
            const clientBefore = process.cpuUsage();
            const started = performance.now();
            const result = await runBroadcast(
              server.ports[0]!,
              { ...b, transport: spec.name.startsWith('ws') ? 'ws' : 'tcp', timeoutMs: config.timeoutMs * 6 },
              signal,
            );
            const measurement = toMeasurement(result, b, server, cpuBefore, clientBefore, started);
            group.rows.push({ server: spec.name, sockserv, measurement });
            ctx.log(
              `${'broadcast'.padEnd(16)} ${spec.name.padEnd(34)} ${Math.round(result.rate).toLocaleString('en-US').padStart(9)} msg/s  ` +
                `p50 ${result.latencyMs.p50.toFixed(2)} ms  p99 ${result.latencyMs.p99.toFixed(2)} ms  server ${measurement.serverCores} cores` +
                (result.errors.outOfOrder + result.errors.missing > 0 ? `  ERRORS ${JSON.stringify(result.errors)}` : ''),
            );
          });
        } catch (error) {
          if (signal.aborted) throw error;
          group.rows.push({ server: spec.name, sockserv, error: (error as Error).message });
          ctx.log(`${'broadcast'.padEnd(16)} ${spec.name.padEnd(34)} FAILED: ${(error as Error).message}`);
        }
      }
    } finally {
      if ('url' in redis) redis.stop();
    }
    return {
      description:
        `Every connection joins one room, then sends ${b.messages} lines \`CLIENT SEQ SENT-µs\`; the server sends each line to ` +
        `every member, the sender included, and a connection sends its next line as one of its own comes back (at most ` +
        `${b.window} unconfirmed), so the load runs at the server's pace. Fan-out messages/s = lines delivered ` +
        `(${b.connections} × ${b.connections} × ${b.messages}) / the time from the first send to the last delivery; latency is ` +
        `each delivery's receipt time minus its send time, on the harness's clock; every member checks it got every sender's ` +
        `lines once and in order (errors: out of order, missing). A warm-up round of the same size runs first. sockserv: the rooms ` +
        `handler \`await this.broadcast('all', this.request)\` (bench/handlers/broadcast.ts) on ThreadingTCPServer ` +
        `(${config.workers} workers), TCPServer (inline), and \`sockserv serve --processes 2 --pubsub\` with a local ` +
        `redis-server (one worker each); node:net: one write of each data event's lines to every member (Buffers only); ws: ` +
        '`wss.clients.forEach(c => c.send(data))`, its client (the `ws` package) in the harness. Ratio: against node:net.',
      commands,
      groups: [group],
    };
  },
};

function toMeasurement(
  result: BroadcastResult,
  load: { connections: number; window: number },
  server: RunningServer,
  cpuBefore: number,
  clientBefore: NodeJS.CpuUsage,
  started: number,
): Measurement {
  const wallSec = (performance.now() - started) / 1000;
  const client = process.cpuUsage(clientBefore);
  return {
    connections: load.connections,
    pipeline: load.window,
    requests: result.deliveries,
    durationSec: result.durationSec,
    rps: result.rate,
    latencyMs: result.latencyMs,
    errors: { refused: 0, reset: 0, timeout: result.errors.missing, badReply: result.errors.outOfOrder, other: 0 },
    serverCores: round((server.cpuSeconds() - cpuBefore) / wallSec, 2),
    clientCores: round((client.user + client.system) / 1e6 / wallSec, 2),
    serverRssMiB: round(server.rssBytes() / 2 ** 20, 1),
    timeline: [],
  };
}

/** A throwaway redis-server on 127.0.0.1 for the two-process row, or why there is none. */
function startRedis(): { url: Promise<string>; stop: () => void } | { error: string } {
  if (spawnSync('redis-server', ['--version']).error) return { error: 'redis-server is not installed (apt-get install redis-server)' };
  let child: ChildProcess | undefined;
  const url = freePort().then(
    (port) =>
      new Promise<string>((resolve, reject) => {
        child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'ignore'] });
        let output = '';
        child.stdout!.setEncoding('utf8').on('data', (text: string) => {
          output += text;
          if (output.includes('Ready to accept connections')) resolve(`redis://127.0.0.1:${port}`);
        });
        child.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready`)));
      }),
  );
  return { url, stop: () => child?.kill('SIGKILL') };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}
