// Scenario 3, responsiveness: one process serves PBKDF2 on one listener and PING on another.
// The heavy listener is saturated (closed loop) while PING is sent at a fixed open-loop rate on
// the second; PING's p99 shows whether heavy handlers stall the event loop that every
// connection shares. sockserv: ThreadingTCPServer + inline TCPServer; baseline: the same two
// listeners in one single-threaded node:net process (the hashing runs on the loop). sockserv runs
// twice: with one worker per core, and with one worker fewer.

import { setTimeout as sleep } from 'node:timers/promises';
import { expectExactly, measure } from '../measure.js';
import type { Group } from '../results.js';
import { commandLine, plainNet, sockservTwoListeners } from '../servers.js';
import { PING, PONG, hashLine } from '../work.js';
import { type Scenario, describe, isSockserv, withServer } from './scenario.js';

const TEXT = 'sockserv benchmark: hash me';

export const responsiveness: Scenario = {
  id: 'responsiveness',
  title: 'Responsiveness under CPU load',
  async run(ctx) {
    const { config, signal } = ctx;
    const r = config.responsiveness;
    const group: Group = {
      id: 'responsiveness',
      title: `PING p99 at ${r.pingRate}/s while PBKDF2 saturates the other listener`,
      metric: 'p99Ms',
      baseline: 'node:net single-threaded',
      rows: [],
    };
    const commands: Record<string, string> = {};
    const expectedHash = hashLine(TEXT);
    const specs = [sockservTwoListeners(config.workers)];
    // With one worker per core the main thread competes with the workers for a core; one worker
    // fewer shows what leaving it a core buys.
    if (config.workers > 1) specs.push(sockservTwoListeners(config.workers - 1, `sockserv pool (${config.workers - 1} worker${config.workers > 2 ? 's' : ''}) + inline`));
    specs.push(plainNet('pbkdf2', 'ping'));
    // Control: the same PING load with no heavy load at all — the floor this client and machine
    // can measure (open-loop send timing and scheduling included), to read the others against.
    const control = sockservTwoListeners(config.workers, 'sockserv, no heavy load (control)');
    specs.push(control);
    for (const spec of specs) {
      commands[spec.name] = commandLine(spec);
      try {
        await withServer(spec, async (server) => {
          const [heavyPort, pingPort] = server.ports as [number, number];
          const heavy = spec === control ? Promise.resolve(undefined) : measure(
            server,
            heavyPort,
            {
              connections: r.heavyConnections,
              pipeline: r.heavyPipeline,
              payload: Buffer.from(TEXT),
              durationSec: r.leadSec + config.warmupSec + config.durationSec + 0.5,
              warmupSec: 0,
              timeoutMs: config.timeoutMs,
              expectReply: expectExactly(expectedHash),
            },
            signal,
          );
          heavy.catch(() => {}); // awaited below; this only keeps an early rejection from going unhandled
          await sleep(r.leadSec * 1000, undefined, { signal });
          const ping = await measure(
            server,
            pingPort,
            {
              connections: r.pingConnections,
              pipeline: r.pingPipeline,
              rate: r.pingRate,
              payload: Buffer.from(PING),
              durationSec: config.durationSec,
              warmupSec: config.warmupSec,
              timeoutMs: config.timeoutMs,
              expectReply: expectExactly(PONG),
            },
            signal,
          );
          const load = await heavy;
          const stats = isSockserv(spec) ? await server.stats() : undefined;
          group.rows.push({ server: spec.name, sockserv: isSockserv(spec), measurement: ping, ...(load ? { load } : {}), ...(stats ? { extra: { stats } } : {}) });
          ctx.log(`${'ping'.padEnd(16)} ${spec.name.padEnd(34)} ${describe(ping)}`);
          if (load) ctx.log(`${'heavy'.padEnd(16)} ${spec.name.padEnd(34)} ${describe(load)}`);
        });
      } catch (error) {
        if (signal.aborted) throw error;
        group.rows.push({ server: spec.name, sockserv: isSockserv(spec), error: (error as Error).message });
        ctx.log(`${spec.name}: FAILED: ${(error as Error).message}`);
      }
    }
    return {
      description:
        `Heavy listener: ${r.heavyConnections} connections × pipeline ${r.heavyPipeline} of PBKDF2 (closed loop, ` +
        `${r.leadSec} s head start). PING listener: ${r.pingRate} requests/s open loop over ${r.pingConnections} ` +
        `connections, ${config.warmupSec} s warm-up then ${config.durationSec} s measured. Bar: PING p99 (lower is better); ` +
        `ratio: against the single-threaded node:net process.`,
      commands,
      groups: [group],
    };
  },
};
