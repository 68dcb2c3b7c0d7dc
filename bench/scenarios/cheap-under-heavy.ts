// Scenario 5, cheap under heavy on ONE server (issue 9): one listener answers PING with PONG and
// any other line with its PBKDF2 hash. A mixed load — runStress's `mix`, the same thing as
// `sockserv stress --mix 'PING:4,<text>:1' -c 32` — keeps 32 connections each with one request
// outstanding; the connections stuck in hashes keep the pool saturated while the PINGs measure
// how long a cheap request waits behind heavy ones. The PING kind's p50/p99 is the result, read
// against the idle floor (PING alone at a low open-loop rate on the same server: what this client
// and machine can measure at all) and CPython's thread-per-connection server under the same mix.

import { expectExactly, kindMeasurement, measure } from '../measure.js';
import type { Group } from '../results.js';
import { commandLine, pythonThreading, renamed, sockservPool, sockservPoolInlineLane } from '../servers.js';
import { PING, PONG, hashLine } from '../work.js';
import { type Scenario, describe, isSockserv, withServer } from './scenario.js';

const TEXT = 'sockserv benchmark: hash me';
const HEAVY = 'PBKDF2';
export const FLOOR_SUFFIX = 'PING alone (idle floor)';

export const cheapUnderHeavy: Scenario = {
  id: 'cheap',
  title: 'Cheap requests under heavy ones, one server (mixed load)',
  async run(ctx) {
    const { config, signal } = ctx;
    const c = config.cheap;
    const group: Group = {
      id: 'cheap',
      title: `PING p99 in a PING:${c.pingWeight} + PBKDF2:${c.heavyWeight} mix on one listener, ${c.connections} connections`,
      metric: 'p99Ms',
      baseline: 'CPython ThreadingTCPServer',
      rows: [],
    };
    const hash = hashLine(TEXT);
    const mixed = [sockservPool('mixed', config.workers), sockservPoolInlineLane('mixed', config.workers), pythonThreading('mixed')];
    const floor = renamed(sockservPool('mixed', config.workers), `sockserv pool, ${FLOOR_SUFFIX}`);
    const commands: Record<string, string> = {};
    for (const spec of [...mixed, floor]) {
      commands[spec.name] = commandLine(spec);
      const sockserv = isSockserv(spec);
      try {
        await withServer(spec, async (server) => {
          const port = server.ports[0]!;
          if (spec === floor) {
            const ping = await measure(
              server,
              port,
              {
                connections: c.floorConnections,
                pipeline: 1,
                rate: c.floorRate,
                payload: Buffer.from(PING),
                durationSec: config.durationSec,
                warmupSec: config.warmupSec,
                timeoutMs: config.timeoutMs,
                expectReply: expectExactly(PONG),
              },
              signal,
            );
            group.rows.push({ server: spec.name, sockserv, measurement: ping });
            ctx.log(`${'cheap'.padEnd(16)} ${spec.name.padEnd(34)} ${describe(ping)}`);
            return;
          }
          const m = await measure(
            server,
            port,
            {
              connections: c.connections,
              pipeline: 1,
              payload: Buffer.from(PING),
              mix: [
                { payload: Buffer.from(PING), weight: c.pingWeight, name: PING },
                { payload: Buffer.from(TEXT), weight: c.heavyWeight, name: HEAVY },
              ],
              durationSec: config.durationSec,
              warmupSec: config.warmupSec,
              timeoutMs: config.timeoutMs,
              expectReply: (reply, request) => reply.toString('latin1') === (request.toString('latin1') === PING ? PONG : hash),
            },
            signal,
          );
          const ping = kindMeasurement(m, PING);
          const heavy = kindMeasurement(m, HEAVY);
          const stats = sockserv ? await server.stats() : undefined;
          group.rows.push({ server: spec.name, sockserv, measurement: ping, load: heavy, extra: { mixed: m, ...(stats ? { stats } : {}) } });
          ctx.log(`${'cheap ping'.padEnd(16)} ${spec.name.padEnd(34)} ${describe(ping)}`);
          ctx.log(`${'cheap pbkdf2'.padEnd(16)} ${spec.name.padEnd(34)} ${describe(heavy)}`);
        });
      } catch (error) {
        if (signal.aborted) throw error;
        group.rows.push({ server: spec.name, sockserv, error: (error as Error).message });
        ctx.log(`${spec.name}: FAILED: ${(error as Error).message}`);
      }
    }
    return {
      description:
        `One listener, one handler: \`${PING}\` → \`${PONG}\`, any other line → its PBKDF2-SHA256 (as in scenario 2). ` +
        `The load is one mixed runStress (\`sockserv stress --mix '${PING}:${c.pingWeight},${TEXT}:${c.heavyWeight}' ` +
        `-c ${c.connections}\`): ${c.connections} connections, one request outstanding on each (closed loop), kinds in a fixed ` +
        `weighted order; most connections sit in a hash at any time, which keeps the pool saturated. PING columns: the ` +
        `PING kind (latency from its send); PBKDF2 columns: the hash kind meanwhile. Idle floor: the same server with PING ` +
        `alone at ${c.floorRate}/s open loop over ${c.floorConnections} connections — the least this client measures on this ` +
        `machine. ${config.warmupSec} s warm-up then ${config.durationSec} s measured; ${config.workers} workers. ` +
        `Ratio: PING p99 against CPython's thread-per-connection server under the same mix.`,
      commands,
      groups: [group],
    };
  },
};
