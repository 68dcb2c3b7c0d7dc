// Scenario 6, sessions (issue 13): the StreamRequestHandler line echo a Python user ports
// (`for await (const line of this.rfile) await this.wfile.write(line)`), on sockserv's pool and
// inline, against CPython's socketserver.StreamRequestHandler on a ThreadingTCPServer and the best
// hand-written node:net line echo (Buffers, no strings). 50 connections, pipelined and not; then,
// on the same warmed-up server, the memory of idle sessions held open (RSS per session).

import { expectExactly, measure } from '../measure.js';
import type { Group, ManyConnections } from '../results.js';
import { commandLine, netEcho, pythonThreading, sockservSessions } from '../servers.js';
import { PING } from '../work.js';
import { idleMemory } from '../idle-memory.js';
import { type Scenario, describe, isSockserv, withServer } from './scenario.js';

export const sessions: Scenario = {
  id: 'sessions',
  title: 'Sessions (StreamRequestHandler line echo)',
  async run(ctx) {
    const { config, signal } = ctx;
    const s = config.sessions;
    const groups: Group[] = s.pipelines.map((pipeline) => ({
      id: `sessions-p${pipeline}`,
      title: `Session line echo, ${s.connections} connections, pipeline ${pipeline}`,
      metric: 'rps',
      baseline: 'CPython ThreadingTCPServer',
      rows: [],
    }));
    const pool = sockservSessions('pool', config.workers);
    const python = pythonThreading('echo');
    const net = netEcho();
    const specs = [pool, sockservSessions('inline', config.workers), python, net];
    const heldBy = new Set([pool, python, net]);
    const commands: Record<string, string> = {};
    const held: ManyConnections[] = [];
    for (const spec of specs) {
      commands[spec.name] = commandLine(spec);
      const sockserv = isSockserv(spec);
      try {
        await withServer(spec, async (server) => {
          for (const group of groups) {
            signal.throwIfAborted();
            const pipeline = s.pipelines[groups.indexOf(group)]!;
            try {
              const measurement = await measure(
                server,
                server.ports[0]!,
                {
                  connections: s.connections,
                  pipeline,
                  payload: Buffer.from(PING),
                  durationSec: config.durationSec,
                  warmupSec: config.warmupSec,
                  timeoutMs: config.timeoutMs,
                  expectReply: expectExactly(PING),
                },
                signal,
              );
              group.rows.push({ server: spec.name, sockserv, measurement });
              ctx.log(`${group.id.padEnd(16)} ${spec.name.padEnd(34)} ${describe(measurement)}`);
            } catch (error) {
              if (signal.aborted) throw error;
              group.rows.push({ server: spec.name, sockserv, error: (error as Error).message });
              ctx.log(`${group.id.padEnd(16)} ${spec.name.padEnd(34)} FAILED: ${(error as Error).message}`);
            }
          }
          if (heldBy.has(spec)) {
            const log = (line: string): void => ctx.log(`${'sessions idle'.padEnd(16)} ${line}`);
            held.push(await idleMemory(server, sockserv, s.idleSessions, s.batch, signal, log));
          }
        });
      } catch (error) {
        if (signal.aborted) throw error;
        for (const group of groups) {
          if (!group.rows.some((row) => row.server === spec.name)) group.rows.push({ server: spec.name, sockserv, error: (error as Error).message });
        }
        ctx.log(`${spec.name}: FAILED: ${(error as Error).message}`);
      }
    }
    return {
      description:
        `A session per connection: sockserv's StreamRequestHandler \`for await (const line of this.rfile) await ` +
        `this.wfile.write(line)\` (bench/handlers/echo-session.ts) on ThreadingTCPServer (${config.workers} workers) and ` +
        `on TCPServer (inline), CPython's StreamRequestHandler readline/write loop on a ThreadingTCPServer, and the ` +
        `hand-written node:net echo that writes each chunk's complete lines back as one Buffer. Each request is the ` +
        `line \`${PING}\`, checked to come back as sent; ${s.connections} connections, ${config.warmupSec} s warm-up then ` +
        `${config.durationSec} s measured. Ratio: against CPython. Then ${s.idleSessions.toLocaleString('en-US')} idle ` +
        `sessions are opened ${s.batch} at a time on the same (warmed-up) server, each echoes one line, and RSS per ` +
        `session = (RSS held − RSS before) / sessions.`,
      commands,
      groups,
      connections: held,
    };
  },
};
