// Owns the targets of issue 17 (heavy handlers at node:cluster speed, cheap requests untouched,
// no idle worker while work waits), judged from the light client's rows (scenarios/light.ts):
// ratios against node:cluster, CPython and node:net; the workers' idle share and the main
// thread's CPU per request from the pooled rows' thread accounts; PING p99 under heavy, with the
// idle floor named in the figure.

import type { ThreadAccounts } from './thread-accounts.js';
import { LIGHT_FLOOR } from './scenarios/light.js';
import { type Group, type RatioTarget, type TargetResult, clean, errorNote, notMeasured, ratioTarget } from './results.js';

const POOL = 'sockserv pool';
const MAX_IDLE_SHARE = 0.02;
const MAX_PING_P99_MS = 2;
/** Half the ~155 µs of main-thread CPU per PBKDF2 request measured before issue 17. */
const MAX_MAIN_US_HEAVY = 78;


const RATIOS: RatioTarget[] = [
  { name: 'PBKDF2, pipeline 1: pool vs node:cluster (#17)', group: 'light-cpu-p1', server: POOL, baseline: 'node:cluster', min: 1.0 },
  { name: 'PBKDF2, pipeline 1: pool vs CPython (#17)', group: 'light-cpu-p1', server: POOL, baseline: 'CPython ThreadingTCPServer', min: 1.1 },
  { name: 'PBKDF2, pipeline 4: pool vs node:cluster (#17)', group: 'light-cpu-p4', server: POOL, baseline: 'node:cluster', min: 1.0 },
  { name: 'PBKDF2, pipeline 4: pool vs CPython (#17)', group: 'light-cpu-p4', server: POOL, baseline: 'CPython ThreadingTCPServer', min: 1.1 },
  { name: 'Trivial, pipelined: pool vs node:net (#17)', group: 'light-trivial-p16', server: POOL, baseline: 'node:net', min: 0.8 },
  { name: 'Trivial, not pipelined: pool vs node:net (#17)', group: 'light-trivial-p1', server: POOL, baseline: 'node:net', min: 0.95 },
  { name: 'Churn: framed pool vs node:net (#17)', group: 'light-churn', server: POOL, baseline: 'node:net (Buffers)', min: 0.8 },
  { name: 'Churn: sessions vs node:net (#17)', group: 'light-churn', server: 'sockserv sessions (pool)', baseline: 'node:net (Buffers)', min: 0.8 },
  { name: 'Sessions, pipelined: pool vs CPython (#17, no regression)', group: 'light-sessions-p16', server: 'sockserv sessions (pool)', baseline: 'CPython ThreadingTCPServer', min: 2.0 },
];

export function evaluateLightTargets(groups: Map<string, Group>): TargetResult[] {
  const targets = RATIOS.map((t) => ratioTarget(t, groups.get(t.group)));
  for (const id of ['light-cpu-p1', 'light-cpu-p4']) {
    const row = groups.get(id)?.rows.find((r) => r.server === POOL);
    const accounts = row?.extra?.accounts as ThreadAccounts | undefined;
    const tag = id.endsWith('p1') ? 'pipeline 1' : 'pipeline 4';
    targets.push(
      accounts
        ? {
            name: `Worker idle share under PBKDF2 saturation, ${tag} (#17)`,
            goal: `≤ ${MAX_IDLE_SHARE * 100} %`,
            measured: `${(accounts.workerIdleShare * 100).toFixed(1)} % (wakes/request: to main ${accounts.wakesToMainPerRequest}, to workers ${accounts.wakesToWorkerPerRequest})`,
            met: accounts.workerIdleShare <= MAX_IDLE_SHARE,
          }
        : { name: `Worker idle share under PBKDF2 saturation, ${tag} (#17)`, goal: `≤ ${MAX_IDLE_SHARE * 100} %`, measured: notMeasured(row), met: null },
    );
  }
  const heavy = groups.get('light-cpu-p1')?.rows.find((r) => r.server === POOL);
  const heavyAccounts = heavy?.extra?.accounts as ThreadAccounts | undefined;
  targets.push(
    heavyAccounts
      ? {
          name: 'Main-thread CPU per PBKDF2 request (#17)',
          goal: `≤ ${MAX_MAIN_US_HEAVY} µs (half of 155)`,
          measured: `${heavyAccounts.mainCpuUsPerRequest} µs (workers ${heavyAccounts.workerCpuUsPerRequest.join(', ')} µs)`,
          met: heavyAccounts.mainCpuUsPerRequest <= MAX_MAIN_US_HEAVY,
        }
      : { name: 'Main-thread CPU per PBKDF2 request (#17)', goal: `≤ ${MAX_MAIN_US_HEAVY} µs`, measured: notMeasured(heavy), met: null },
  );
  const ping = groups.get('light-cheap')?.rows.find((r) => r.server === POOL);
  const floor = groups.get('light-cheap-floor')?.rows.find((r) => r.server === LIGHT_FLOOR)?.measurement?.latencyMs;
  const name = 'Cheap PING p99 while PBKDF2 saturates, one server (#17)';
  targets.push(
    ping?.measurement
      ? {
          name,
          goal: `≤ ${MAX_PING_P99_MS} ms`,
          measured: `${ping.measurement.latencyMs.p99.toFixed(2)} ms (p50 ${ping.measurement.latencyMs.p50.toFixed(2)}; idle floor p50/p99 ${floor ? `${floor.p50.toFixed(2)}/${floor.p99.toFixed(2)}` : '?'} ms)${errorNote(ping)}`,
          met: ping.measurement.latencyMs.p99 <= MAX_PING_P99_MS && clean(ping),
        }
      : { name, goal: `≤ ${MAX_PING_P99_MS} ms`, measured: notMeasured(ping), met: null },
  );
  return targets;
}

