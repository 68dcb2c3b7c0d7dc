// Scenario 1, trivial requests: PING → PONG over line framing, 50 connections, pipelined and not.
// Shows what sockserv's machinery costs when the handler costs nothing: the pool (batched hops
// to worker threads) and inline against the best hand-written node:net server, CPython's
// ThreadingTCPServer, and the naive one-piscina-task-per-request design.

import { expectExactly } from '../measure.js';
import type { Group } from '../results.js';
import {
  piscinaPerRequest,
  plainNet,
  pythonThreading,
  sockservInline,
  sockservPool,
  sockservPoolInlineLane,
} from '../servers.js';
import { PING, PONG } from '../work.js';
import { type Scenario, measureEachServer } from './scenario.js';

export const trivial: Scenario = {
  id: 'trivial',
  title: 'Trivial requests (PING → PONG)',
  async run(ctx) {
    const { config } = ctx;
    const { connections, pipelines } = config.trivial;
    const groups: Group[] = pipelines.map((pipeline) => ({
      id: `trivial-p${pipeline}`,
      title: `PING, ${connections} connections, pipeline ${pipeline}`,
      metric: 'rps',
      baseline: 'node:net',
      rows: [],
    }));
    const specs = [
      sockservPool('ping', config.workers),
      sockservPoolInlineLane('ping', config.workers),
      sockservInline('ping'),
      plainNet('ping'),
      pythonThreading('ping'),
      piscinaPerRequest('ping', config.workers),
    ];
    const commands = await measureEachServer(ctx, specs, groups, (group) => ({
      connections,
      pipeline: pipelines[groups.indexOf(group)]!,
      payload: Buffer.from(PING),
      durationSec: config.durationSec,
      warmupSec: config.warmupSec,
      timeoutMs: config.timeoutMs,
      expectReply: expectExactly(PONG),
    }));
    return {
      description:
        `Each request is the line \`${PING}\`, each reply \`${PONG}\`. ${connections} connections, each keeping ` +
        `\`pipeline\` requests in flight (closed loop), ${config.warmupSec} s warm-up then ${config.durationSec} s measured. ` +
        `Multi-core servers use ${config.workers} workers (one per core). Ratio: against the hand-written node:net server.`,
      commands,
      groups,
    };
  },
};
