// Owns where a pooled sockserv server's time goes during a measured window: the CPU each thread
// spent per request (the main thread — the multiplexer — and each worker, read from
// /proc/<pid>/task/<tid>/stat), the workers' idle share (asleep with nothing to run, from
// server.stats().pool's meters) and the cross-thread wakes per request. Sampled before and after
// a load; the difference is the window's.

import { readFileSync } from 'node:fs';
import type { PoolCounters } from 'sockserv';
import type { RunningServer } from './children.js';
import { round } from './results.js';

const TICKS_PER_SECOND = 100;

export interface ThreadSample {
  at: number;
  pool: PoolCounters | null;
  requests: number;
  /** CPU seconds by thread id (the main thread's tid is the pid). */
  cpu: Map<number, number>;
}

export interface ThreadAccounts {
  /** CPU µs per request of the main thread, and of each worker. */
  mainCpuUsPerRequest: number;
  workerCpuUsPerRequest: number[];
  /** Share of the window the workers spent asleep with nothing to run (0..1, averaged over workers). */
  workerIdleShare: number;
  wakesToMainPerRequest: number;
  wakesToWorkerPerRequest: number;
  missedWakes: number;
}

/** Reads a sockserv child's stats (its first listener) and its threads' CPU times. */
export async function sampleThreads(server: RunningServer): Promise<ThreadSample | null> {
  const stats = (await server.stats()) as Array<{ pool: PoolCounters | null; requestsOk: number; requestsFailed: number }> | undefined;
  const first = stats?.[0];
  if (!first) return null;
  const cpu = new Map<number, number>();
  for (const tid of [server.pid, ...(first.pool?.workerTids ?? [])]) cpu.set(tid, threadCpuSeconds(server.pid, tid));
  return { at: performance.now(), pool: first.pool, requests: first.requestsOk + first.requestsFailed, cpu };
}

export function accountsBetween(before: ThreadSample, after: ThreadSample): ThreadAccounts | null {
  const requests = after.requests - before.requests;
  if (requests <= 0 || !before.pool || !after.pool) return null;
  const us = (tid: number) => ((after.cpu.get(tid) ?? 0) - (before.cpu.get(tid) ?? 0)) * 1e6;
  const [main, ...workers] = [...after.cpu.keys()];
  const wallMs = after.at - before.at;
  const workerCount = Math.max(1, after.pool.workerTids.length);
  return {
    mainCpuUsPerRequest: round(us(main!) / requests, 1),
    workerCpuUsPerRequest: workers.map((tid) => round(us(tid) / requests, 1)),
    workerIdleShare: round((after.pool.workerIdleMs - before.pool.workerIdleMs) / (wallMs * workerCount), 4),
    wakesToMainPerRequest: round((after.pool.wakesToMain - before.pool.wakesToMain) / requests, 3),
    wakesToWorkerPerRequest: round((after.pool.wakesToWorker - before.pool.wakesToWorker) / requests, 3),
    missedWakes: after.pool.missedWakes - before.pool.missedWakes,
  };
}

function threadCpuSeconds(pid: number, tid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}
