// Scenario 4, many connections: the sockserv pool server (echo) holds 10,000 concurrent
// connections, and so does the hand-written node:net server for reference (what Node's own
// socket costs). They are opened in batches and kept open; every one sends requests and must get
// its own line back. Memory per connection = (server RSS with them open − RSS idle) / count. A
// short echo load before and while they are held shows whether idle connections slow the rest.

import { setTimeout as sleep } from 'node:timers/promises';
import type { ServerSpec } from '../children.js';
import { HeldConnections } from '../many-connections.js';
import { type Load, expectExactly, measure } from '../measure.js';
import { type Group, type ManyConnections, round } from '../results.js';
import { commandLine, plainNet, sockservPool } from '../servers.js';
import { PING } from '../work.js';
import { type BenchContext, type Scenario, describe, isSockserv, withServer } from './scenario.js';

export const manyConnections: Scenario = {
  id: 'connections',
  title: '10,000 concurrent connections',
  async run(ctx) {
    const { config } = ctx;
    const c = config.connections;
    const specs = [sockservPool('echo', config.workers), plainNet('echo')];
    const group: Group = {
      id: 'connections',
      title: `echo, 50 connections, pipeline 16: alone, then with ${c.count.toLocaleString('en-US')} idle connections open`,
      metric: 'rps',
      baseline: 'node:net',
      rows: [],
    };
    const commands: Record<string, string> = {};
    const held: ManyConnections[] = [];
    for (const spec of specs) {
      commands[spec.name] = commandLine(spec);
      try {
        held.push(await holdMany(ctx, spec, group));
      } catch (error) {
        if (ctx.signal.aborted) throw error;
        group.rows.push({ server: spec.name, sockserv: isSockserv(spec), error: (error as Error).message });
        ctx.log(`${spec.name}: FAILED: ${(error as Error).message}`);
      }
    }
    return {
      title: `${c.count.toLocaleString('en-US')} concurrent connections`,
      description:
        `${c.count.toLocaleString('en-US')} connections opened ${c.batch} at a time and held open; ${c.rounds} rounds in ` +
        `which every connection sends its own line and must get it back. Memory per connection = (server RSS ` +
        `with all open − RSS idle after a warm-up load) / connections opened, from /proc/PID/status VmRSS. ` +
        `The echo load (${c.loadSec} s) runs once before opening them and once while they are held. ` +
        `node:net is the hand-written single-threaded server: the cost of Node's own socket.`,
      commands,
      groups: [group],
      connections: held,
    };
  },
};

async function holdMany(ctx: BenchContext, spec: ServerSpec, group: Group): Promise<ManyConnections> {
  const { config, signal } = ctx;
  const c = config.connections;
  const sockserv = isSockserv(spec);
  const heldName = `${spec.name} + ${c.count.toLocaleString('en-US')} idle`;
  const load: Load = {
    connections: 50,
    pipeline: 16,
    payload: Buffer.from(PING),
    durationSec: c.loadSec,
    warmupSec: config.warmupSec,
    timeoutMs: config.timeoutMs,
    expectReply: expectExactly(PING),
  };
  const log = (line: string): void => ctx.log(`${'connections'.padEnd(16)} ${line}`);
  return withServer(spec, async (server) => {
    const port = server.ports[0]!;
    const alone = await measure(server, port, load, signal); // also warms the server up
    group.rows.push({ server: spec.name, sockserv, measurement: alone });
    log(`${spec.name.padEnd(34)} ${describe(alone)}`);
    await sleep(500, undefined, { signal });
    const rssIdle = server.rssBytes();
    const clients = new HeldConnections();
    try {
      const opening = performance.now();
      await clients.open(port, c.count, c.batch, signal);
      const openSec = (performance.now() - opening) / 1000;
      log(`${spec.name}: opened ${clients.size} (${clients.openErrors} failed) in ${openSec.toFixed(1)} s`);
      const rounds = [];
      for (let r = 0; r < c.rounds; r++) {
        const result = await clients.round(r, 30_000);
        rounds.push({ ...result, sec: round(result.sec, 3) });
        log(`${spec.name}: round ${r}: ${result.answered} answered, ${result.wrong} wrong, ${result.missing} missing in ${result.sec.toFixed(2)} s`);
      }
      await sleep(500, undefined, { signal });
      const rssHeld = server.rssBytes();
      const stats = sockserv ? await server.stats() : undefined;
      const withHeld = await measure(server, port, load, signal);
      group.rows.push({ server: heldName, sockserv, measurement: withHeld, ...(stats ? { extra: { stats } } : {}) });
      log(`${heldName.padEnd(34)} ${describe(withHeld)}`);
      const many: ManyConnections = {
        server: spec.name,
        sockserv,
        target: c.count,
        opened: clients.size,
        openErrors: clients.openErrors,
        openSec: round(openSec, 2),
        rounds,
        rssIdleMiB: round(rssIdle / 2 ** 20, 1),
        rssHeldMiB: round(rssHeld / 2 ** 20, 1),
        bytesPerConnection: Math.round((rssHeld - rssIdle) / Math.max(1, clients.size)),
      };
      log(`${spec.name}: RSS idle ${many.rssIdleMiB} MiB, held ${many.rssHeldMiB} MiB: ${(many.bytesPerConnection / 1024).toFixed(2)} KiB per connection`);
      return many;
    } finally {
      clients.close();
    }
  });
}
