// npm run soak:model [-- --runs N --seed S]: the channel model of test/channel-model.test.ts (a
// WorkerChannel and its ChannelLoop on one thread, random command sequences checked against a
// reference model) with many more runs than `npm test` gives it — 5000 per property by default —
// and a fresh seed each time unless one is given. The model lives in the test file (it runs
// through ts-jest on the sources, not on dist/); this runs jest on its two properties with
// SOCKSERV_MODEL_RUNS and SOCKSERV_MODEL_SEED set. On a failure fast-check prints the shrunk
// command sequence, the seed and the path; replay with
//   SOCKSERV_MODEL_SEED=<seed> SOCKSERV_MODEL_PATH=<path> npx jest test/channel-model.test.ts
// (through node --experimental-vm-modules, as `npm test` runs jest).

import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { ROOT } from './common.mjs';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: process.env.SOCKSERV_MODEL_RUNS ?? '5000' },
    seed: { type: 'string', default: process.env.SOCKSERV_MODEL_SEED },
  },
});
const runs = String(Number(values.runs));
const seed = values.seed ?? String(Math.floor(Math.random() * 2 ** 31));
console.log(`soak:model: ${runs} runs per property, seed ${seed} (again: npm run soak:model -- --runs ${runs} --seed ${seed})`);

const result = spawnSync(
  process.execPath,
  ['--experimental-vm-modules', 'node_modules/jest/bin/jest.js', 'test/channel-model.test.ts', '--testNamePattern', 'the channel model holds'],
  { cwd: ROOT, stdio: 'inherit', env: { ...process.env, SOCKSERV_MODEL_RUNS: runs, SOCKSERV_MODEL_SEED: seed } },
);
if (result.error) throw result.error;
process.exit(result.status ?? 1);
