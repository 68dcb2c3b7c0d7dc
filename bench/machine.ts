// Owns the description of the machine a run measured: CPUs, memory, OS and runtime versions —
// the header of BENCHMARKS.md, because every number below it depends on them.

import { execFileSync } from 'node:child_process';
import { availableParallelism, cpus, loadavg, release, totalmem, type } from 'node:os';

export interface Machine {
  cpuModel: string;
  cpus: number;
  availableParallelism: number;
  totalMemGiB: number;
  os: string;
  node: string;
  python: string;
  /** 1-minute load average when the run started: anything above ~0.5 means the numbers are noisy. */
  loadAverage1m: number;
}

export function describeMachine(): Machine {
  const list = cpus();
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cpus: list.length,
    availableParallelism: availableParallelism(),
    totalMemGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: `${type()} ${release()}`,
    node: process.version,
    python: pythonVersion(),
    loadAverage1m: Math.round(loadavg()[0]! * 100) / 100,
  };
}

function pythonVersion(): string {
  try {
    return execFileSync('python3', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return 'python3 not found';
  }
}
