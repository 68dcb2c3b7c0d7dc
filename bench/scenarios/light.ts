// Scenario 8, the issue targets measured with a light client (issue 17): the same loads as
// scenarios 1, 2, 5, 6 and 7, driven by bench/loadgen/epoll-client.c instead of the stress tool,
// so the client's own CPU does not compress the ratios on a 2-core machine. For sockserv's pooled
// rows it also reports where the server's time went (thread-accounts.ts): each thread's CPU per
// request, the workers' idle share, and wakes per request.

import { setTimeout as delay } from 'node:timers/promises';
import type { ServerSpec } from '../children.js';
import { LIGHT_CLIENT, type LightLoad, lightClient, measureLight } from '../light-client.js';
import type { Group, Row } from '../results.js';
import {
  commandLine,
  netEcho,
  nodeCluster,
  plainNet,
  pythonThreading,
  renamed,
  sockservInline,
  sockservPool,
  sockservPoolInlineLane,
  sockservSessions,
} from '../servers.js';
import { type ThreadAccounts, accountsBetween, sampleThreads } from '../thread-accounts.js';
import { settleTimeWait } from '../time-wait.js';
import { PING, PONG, hashLine } from '../work.js';
import { type BenchContext, type Scenario, describe, isSockserv, withServer } from './scenario.js';

const TEXT = 'sockserv benchmark: hash me';
export const LIGHT_FLOOR = 'sockserv pool, PING alone (idle floor)';

interface Plan {
  group: Group;
  specs: ServerSpec[];
  /** The load, and which of its kinds is the row's measurement (the second is the row's `load`). */
  load: LightLoad;
  pick?: 'second-as-load';
}

export const light: Scenario = {
  id: 'light',
  title: 'Issue targets with a light client (C epoll)',
  async run(ctx) {
    const built = lightClient();
    if ('missing' in built) throw new Error(built.missing);
    const { config } = ctx;
    const w = config.workers;
    const base = { durationSec: config.durationSec, warmupSec: config.warmupSec };
    const hash = hashLine(TEXT);
    const group = (id: string, title: string, baseline: string, metric: 'rps' | 'p99Ms' = 'rps'): Group => ({ id, title, metric, baseline, rows: [] });
    const cpuServers = [sockservPool('pbkdf2', w), nodeCluster('pbkdf2', w), pythonThreading('pbkdf2')];
    const trivialServers = [sockservPool('ping', w), sockservPoolInlineLane('ping', w), sockservInline('ping'), plainNet('ping')];
    const plans: Plan[] = [
      { group: group('light-cpu-p1', 'PBKDF2, 20 connections, pipeline 1 (light client)', 'node:cluster'), specs: cpuServers, load: { ...base, connections: 20, pipeline: 1, line: TEXT, expect: hash } },
      { group: group('light-cpu-p4', 'PBKDF2, 20 connections, pipeline 4 (light client)', 'node:cluster'), specs: cpuServers, load: { ...base, connections: 20, pipeline: 4, line: TEXT, expect: hash } },
      { group: group('light-trivial-p16', 'PING, 50 connections, pipeline 16 (light client)', 'node:net'), specs: trivialServers, load: { ...base, connections: 50, pipeline: 16, line: PING, expect: PONG } },
      { group: group('light-trivial-p1', 'PING, 50 connections, pipeline 1 (light client)', 'node:net'), specs: trivialServers, load: { ...base, connections: 50, pipeline: 1, line: PING, expect: PONG } },
      {
        group: group('light-cheap', 'PING p99 in a PING:4 + PBKDF2:1 mix, 32 connections (light client)', 'CPython ThreadingTCPServer', 'p99Ms'),
        specs: [sockservPool('mixed', w), pythonThreading('mixed')],
        load: { ...base, connections: 32, pipeline: 1, line: PING, expect: PONG, line2: { line: TEXT, expect: hash, weights: [4, 1] } },
        pick: 'second-as-load',
      },
      {
        group: group('light-cheap-floor', 'PING alone, 1 connection (the idle floor, light client)', 'sockserv pool', 'p99Ms'),
        specs: [renamed(sockservPool('mixed', w), LIGHT_FLOOR)],
        load: { ...base, connections: 1, pipeline: 1, line: PING, expect: PONG },
      },
      {
        group: group('light-sessions-p16', 'Sessions: line echo, 50 connections, pipeline 16 (light client)', 'CPython ThreadingTCPServer'),
        specs: [sockservSessions('pool', w), pythonThreading('echo')],
        load: { ...base, connections: 50, pipeline: 16, line: PING, expect: PING },
      },
      {
        group: group('light-churn', 'Connect, one line, close: 8 at a time (light client)', 'node:net (Buffers)'),
        specs: [sockservPool('echo', w), sockservSessions('pool', w), netEcho()],
        load: { ...base, connections: 8, pipeline: 1, line: PING, expect: PING, churn: true },
      },
    ];
    const commands: Record<string, string> = { 'light client': `cc -O2 bench/loadgen/epoll-client.c; ${LIGHT_CLIENT}` };
    for (const plan of plans) {
      for (const spec of plan.specs) {
        commands[spec.name] = commandLine(spec);
        plan.group.rows.push(await measureRow(ctx, built.path, spec, plan));
      }
    }
    return {
      description:
        `The issue targets' loads, driven by ${LIGHT_CLIENT}: closed loop, every reply checked byte for byte, ` +
        `${config.warmupSec} s warm-up then ${config.durationSec} s measured, ${w} workers or processes. PBKDF2 is scenario 2's ` +
        `work; PING scenario 1's; the mix scenario 5's (PING columns: the PING kind; its floor is PING alone on one ` +
        `connection); churn scenario 7's, each churn row once the last one's TIME_WAIT sockets have expired. For sockserv's pooled rows, the notes give each thread's CPU per request (main, ` +
        `workers), the workers' idle share, and wakes per request over the run.`,
      commands,
      groups: plans.map((p) => p.group),
    };
  },
};

async function measureRow(ctx: BenchContext, client: string, spec: ServerSpec, plan: Plan): Promise<Row> {
  const sockserv = isSockserv(spec);
  if (plan.load.churn) await settleTimeWait(ctx.signal, ctx.log);
  try {
    return await withServer(spec, async (server) => {
      const pooled = sockserv && spec.args.some((arg) => arg.startsWith('pool:'));
      // The thread accounts are sampled inside the client's measured window (from half a second
      // after its warm-up to half a second before its end), so connecting, warming up and the
      // client's exit — when the workers wait for load that has not come or has gone — are not
      // counted as idle under saturation.
      const measuring = measureLight(client, server, server.ports[0]!, plan.load, ctx.signal);
      measuring.catch(() => {}); // awaited below; a failure meanwhile must not be an unhandled rejection
      let accounts: ThreadAccounts | null = null;
      if (pooled && plan.load.durationSec > 1.5) {
        await delay((plan.load.warmupSec + 0.5) * 1000, undefined, { signal: ctx.signal });
        const before = await sampleThreads(server);
        await delay((plan.load.durationSec - 1) * 1000, undefined, { signal: ctx.signal });
        const after = await sampleThreads(server);
        accounts = before && after ? accountsBetween(before, after) : null;
      }
      const [first, second] = await measuring;
      ctx.log(`${plan.group.id.padEnd(18)} ${spec.name.padEnd(34)} ${describe(first!)}${accounts ? ` ${JSON.stringify(accounts)}` : ''}`);
      return {
        server: spec.name,
        sockserv,
        measurement: first!,
        ...(plan.pick === 'second-as-load' && second ? { load: second } : {}),
        ...(accounts ? { extra: { accounts } } : {}),
      };
    });
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    ctx.log(`${plan.group.id} ${spec.name}: FAILED: ${(error as Error).message}`);
    return { server: spec.name, sockserv, error: (error as Error).message };
  }
}
