// Owns every knob of a bench run — loads, durations, connection counts — for the full run and
// for `--quick` (a smoke run of the same scenarios with shorter loads). Scenario files
// read these; nothing else in bench/ hard-codes a duration. The quick run of the first four
// scenarios is sized to finish in under a minute, build included, even on a busy 2-core machine;
// each later scenario (cheap, sessions, churn) adds about 10-20 s.

import { availableParallelism } from 'node:os';

export interface BenchConfig {
  quick: boolean;
  /** Worker threads / cluster processes for every multi-core server: one per core. */
  workers: number;
  /** Seconds measured per load, after `warmupSec` of unmeasured load. */
  durationSec: number;
  warmupSec: number;
  /** runStress's per-request timeout. */
  timeoutMs: number;
  trivial: { connections: number; pipelines: number[] };
  cpu: { connections: number; pipelines: number[] };
  responsiveness: {
    heavyConnections: number;
    heavyPipeline: number;
    /** Seconds the heavy load runs before the PING measurement starts. */
    leadSec: number;
    pingRate: number;
    pingConnections: number;
    pingPipeline: number;
  };
  connections: {
    count: number;
    /** Connections opened concurrently, batch after batch; at most the listen backlog (511). */
    batch: number;
    rounds: number;
    /** Seconds of the short echo load run before and with the connections held. */
    loadSec: number;
  };
  cheap: {
    /** Connections of the mixed load, each with one request outstanding (closed loop). */
    connections: number;
    /** The mix: PING and PBKDF2 lines in this proportion, in a fixed weighted order. */
    pingWeight: number;
    heavyWeight: number;
    /** The idle floor: PING alone, open loop at this rate over this many connections. */
    floorRate: number;
    floorConnections: number;
  };
  sessions: {
    connections: number;
    pipelines: number[];
    /** Idle sessions held open to read RSS per session, opened `batch` at a time. */
    idleSessions: number;
    batch: number;
  };
  churn: {
    /** Concurrent one-request connections (the 8 client threads). */
    connections: number;
  };
  broadcast: {
    /** Connections in the one room; each sends `messages` lines, at most `window` unconfirmed. */
    connections: number;
    messages: number;
    window: number;
  };
}

export function benchConfig(quick: boolean): BenchConfig {
  return {
    quick,
    workers: availableParallelism(),
    durationSec: quick ? 0.8 : 5,
    warmupSec: quick ? 0.2 : 1,
    timeoutMs: 10_000,
    trivial: { connections: 50, pipelines: [16, 1] },
    cpu: { connections: 50, pipelines: [1, 4] },
    responsiveness: {
      heavyConnections: 32,
      heavyPipeline: 4,
      leadSec: quick ? 0.5 : 1,
      pingRate: 2000,
      pingConnections: 8,
      pingPipeline: 32,
    },
    connections: { count: quick ? 2_000 : 10_000, batch: 500, rounds: 2, loadSec: quick ? 0.8 : 2 },
    cheap: { connections: 32, pingWeight: 4, heavyWeight: 1, floorRate: 2000, floorConnections: 8 },
    sessions: { connections: 50, pipelines: [16, 1], idleSessions: quick ? 1_000 : 4_000, batch: 500 },
    churn: { connections: 8 },
    broadcast: { connections: 50, messages: quick ? 40 : 200, window: 4 },
  };
}
