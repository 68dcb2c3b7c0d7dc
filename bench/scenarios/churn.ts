// Scenario 7, connection churn (issue 13): one request per connection — connect, send a line, read
// its echo, close — from 8 concurrent clients, i.e. `sockserv stress --new-connection -c 8`.
// Connections per second for sockserv's framed pool server and its session server against the
// hand-written node:net echo and CPython's ThreadingTCPServer; the latency includes the connect.

import { expectExactly } from '../measure.js';
import type { Group } from '../results.js';
import { settleTimeWait } from '../time-wait.js';
import { netEcho, pythonThreading, sockservPool, sockservSessions } from '../servers.js';
import { PING } from '../work.js';
import { type Scenario, measureEachServer } from './scenario.js';

export const churn: Scenario = {
  id: 'churn',
  title: 'Connection churn (one request per connection)',
  async run(ctx) {
    const { config } = ctx;
    const { connections } = config.churn;
    const group: Group = {
      id: 'churn',
      title: `One request per connection, ${connections} at a time: connections/s`,
      metric: 'rps',
      baseline: 'node:net (Buffers)',
      rows: [],
    };
    const specs = [sockservPool('echo', config.workers), sockservSessions('pool', config.workers), netEcho(), pythonThreading('echo')];
    const commands = await measureEachServer(ctx, specs, [group], () => ({
      connections,
      pipeline: 1,
      newConnection: true,
      payload: Buffer.from(PING),
      durationSec: config.durationSec,
      warmupSec: config.warmupSec,
      timeoutMs: config.timeoutMs,
      expectReply: expectExactly(PING),
    }), () => settleTimeWait(ctx.signal, ctx.log));
    return {
      description:
        `${connections} client slots, each connecting, sending the line \`${PING}\`, reading its echo (checked) and ` +
        `closing, again and again (runStress newConnection; \`sockserv stress --new-connection -c ${connections}\`). ` +
        `req/s is connections per second; latency counts from the connect. sockserv pool: the framed echo handler on ` +
        `ThreadingTCPServer; sockserv sessions: the StreamRequestHandler line echo. ${config.warmupSec} s warm-up then ` +
        `${config.durationSec} s measured, each server once its predecessor's TIME_WAIT sockets have expired ` +
        `(bench/time-wait.ts). Ratio: against the hand-written node:net echo.`,
      commands,
      groups: [group],
    };
  },
};
