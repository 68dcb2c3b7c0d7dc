// Owns the targets of issues 9 (streaming worker channels), 13 (sessions and churn) and 20 (rooms:
// broadcast fan-out), judged like the others in targets.ts: each names the group and rows it reads and is met, not met, or
// not measured (its scenario skipped, failed, or — RESP PBKDF2 — not in the bench yet). Ratios
// here name their own baseline row, which need not be the group's (PBKDF2 against CPython).

import { FLOOR_SUFFIX } from './scenarios/cheap-under-heavy.js';
import { type BenchResults, type Group, type ManyConnections, type RatioTarget, type TargetResult, clean, errorNote, notMeasured, ratioTarget } from './results.js';

/** Cheap request on a saturated server (issue 9). */
const MAX_CHEAP_P50_MS = 0.5;
const MAX_CHEAP_P99_MS = 2;
/** Memory per idle connection (issue 9, 10,000 open) and per idle session (issue 13, 4,000 open). */
const MAX_BYTES_PER_CONNECTION_ISSUE_9 = 4 * 1024;
export const MAX_BYTES_PER_SESSION = 8 * 1024;


const RATIOS: RatioTarget[] = [
  { name: 'Trivial, pipelined: pool vs node:net (#9)', group: 'trivial-p16', server: 'sockserv pool', baseline: 'node:net', min: 0.9 },
  { name: 'Trivial, not pipelined: pool vs node:net (#9)', group: 'trivial-p1', server: 'sockserv pool', baseline: 'node:net', min: 0.95 },
  { name: 'PBKDF2, pipeline 1: pool vs CPython (#9)', group: 'cpu-p1', server: 'sockserv pool', baseline: 'CPython ThreadingTCPServer', min: 1.0 },
  { name: 'PBKDF2, pipeline 4: pool vs CPython (#9)', group: 'cpu-p4', server: 'sockserv pool', baseline: 'CPython ThreadingTCPServer', min: 1.0 },
  { name: 'RESP PBKDF2: pool vs node:cluster (#9)', group: 'cpu-resp', server: 'sockserv pool', baseline: 'node:cluster', min: 1.0 },
  {
    name: 'Sessions, pipelined: pool vs CPython (#13)',
    group: 'sessions-p16',
    server: 'sockserv sessions (pool)',
    baseline: 'CPython ThreadingTCPServer',
    min: 2.0,
  },
  {
    name: 'Sessions, not pipelined: pool vs CPython (#13)',
    group: 'sessions-p1',
    server: 'sockserv sessions (pool)',
    baseline: 'CPython ThreadingTCPServer',
    min: 1.5,
  },
  { name: 'Churn: framed pool vs node:net (#13)', group: 'churn', server: 'sockserv pool', baseline: 'node:net (Buffers)', min: 0.8 },
  { name: 'Churn: sessions vs node:net (#13)', group: 'churn', server: 'sockserv sessions (pool)', baseline: 'node:net (Buffers)', min: 0.8 },
  { name: 'Broadcast fan-out: pool vs node:net chat (#20)', group: 'broadcast', server: 'sockserv pool', baseline: 'node:net chat (Buffers)', min: 0.8 },
  {
    name: 'Broadcast fan-out: 2 processes + Redis vs node:net chat (#20)',
    group: 'broadcast',
    server: 'sockserv --processes 2 + Redis',
    baseline: 'node:net chat (Buffers)',
    min: 1.0,
  },
];

export function evaluateIssueTargets(results: BenchResults, groups: Map<string, Group>): TargetResult[] {
  const targets = RATIOS.map((t) => ratioTarget(t, groups.get(t.group)));
  targets.push(...cheapTargets(groups.get('cheap')));
  targets.push(
    memoryTarget(
      'Idle connections: server memory (#9)',
      results.scenarios.connections?.connections?.find((c) => c.sockserv),
      MAX_BYTES_PER_CONNECTION_ISSUE_9,
      'connection',
    ),
    memoryTarget(
      'Idle sessions: server memory (#13)',
      results.scenarios.sessions?.connections?.find((c) => c.sockserv),
      MAX_BYTES_PER_SESSION,
      'session',
    ),
  );
  return targets;
}


/** PING p50 and p99 of the default pool under the mix, with the idle floor named in the figure. */
function cheapTargets(group: Group | undefined): TargetResult[] {
  const row = group?.rows.find((r) => r.server === 'sockserv pool');
  const floor = group?.rows.find((r) => r.server.endsWith(FLOOR_SUFFIX))?.measurement?.latencyMs;
  return (['p50', 'p99'] as const).map((p) => {
    const max = p === 'p50' ? MAX_CHEAP_P50_MS : MAX_CHEAP_P99_MS;
    const name = `Cheap under heavy, one server: PING ${p} (#9)`;
    const goal = `≤ ${max} ms`;
    const m = row?.measurement;
    if (!m) return { name, goal, measured: notMeasured(row), met: null };
    const value = m.latencyMs[p];
    const floorNote = floor ? ` (idle floor ${floor[p].toFixed(2)} ms)` : '';
    return { name, goal, measured: `${value.toFixed(2)} ms${floorNote}${errorNote(row!)}`, met: value <= max && clean(row!) };
  });
}

function memoryTarget(name: string, many: ManyConnections | undefined, max: number, unit: string): TargetResult {
  const goal = `≤ ${max / 1024} KiB per ${unit}, all answered`;
  if (!many) return { name, goal, measured: 'not measured', met: null };
  const allAnswered = many.opened === many.target && many.rounds.every((r) => r.answered === many.opened);
  return {
    name: `${name}, ${many.target.toLocaleString('en-US')} open`,
    goal,
    measured:
      `${(many.bytesPerConnection / 1024).toFixed(2)} KiB` +
      (allAnswered ? '' : ` (opened ${many.opened}, answered ${many.rounds.map((r) => r.answered).join('/')})`),
    met: many.bytesPerConnection <= max && allAnswered,
  };
}
