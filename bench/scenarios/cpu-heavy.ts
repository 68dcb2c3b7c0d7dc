// Scenario 2, CPU-heavy requests: each line is answered with its hex PBKDF2-SHA256 (about 0.5 ms
// of CPU). Here the cores matter: sockserv's pool against one event loop, node:cluster (one
// process per core, the usual way to use every core) and CPython threads. Every reply is checked.

import { expectExactly } from '../measure.js';
import type { Group } from '../results.js';
import { nodeCluster, plainNet, pythonThreading, sockservPool } from '../servers.js';
import { ITERATIONS, hashLine } from '../work.js';
import { type Scenario, measureEachServer } from './scenario.js';

const TEXT = 'sockserv benchmark: hash me';

export const cpuHeavy: Scenario = {
  id: 'cpu',
  title: 'CPU-heavy requests (PBKDF2-SHA256)',
  async run(ctx) {
    const { config } = ctx;
    const { connections, pipelines } = config.cpu;
    const groups: Group[] = pipelines.map((pipeline) => ({
      id: `cpu-p${pipeline}`,
      title: `PBKDF2, ${connections} connections, pipeline ${pipeline}`,
      metric: 'rps',
      baseline: 'node:cluster',
      rows: [],
    }));
    const specs = [
      sockservPool('pbkdf2', config.workers),
      plainNet('pbkdf2'),
      nodeCluster('pbkdf2', config.workers),
      pythonThreading('pbkdf2'),
    ];
    const expected = hashLine(TEXT);
    const commands = await measureEachServer(ctx, specs, groups, (group) => ({
      connections,
      pipeline: pipelines[groups.indexOf(group)]!,
      payload: Buffer.from(TEXT),
      durationSec: config.durationSec,
      warmupSec: config.warmupSec,
      timeoutMs: config.timeoutMs,
      expectReply: expectExactly(expected),
    }));
    return {
      description:
        `Each request is a line of text, each reply its hex PBKDF2-SHA256 (salt \`sockserv\`, ${ITERATIONS} iterations, ` +
        `32 bytes), checked against the expected digest. ${connections} connections, ${config.warmupSec} s warm-up then ` +
        `${config.durationSec} s measured; ${config.workers} workers or processes (one per core). Ratio: against node:cluster.`,
      commands,
      groups,
    };
  },
};
