// Owns the server child processes: start one from a ServerSpec, wait for its
// `listening on tcp://HOST:PORT` line(s), and stop it — every child leads its own process group,
// so stopping also ends its cluster workers. All children ever started are tracked here so the
// harness can end them at exit, on errors and on SIGINT (killAllNow is synchronous, for 'exit').

import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { groupCpuSeconds, groupRssBytes } from './proc.js';

/** How to start one benchmarked server. */
export interface ServerSpec {
  /** Display name, also the key in results. */
  name: string;
  command: string;
  args: string[];
  /** How many `listening on` lines to wait for (one per listener, in the order they print). */
  listeners: number;
  /** Working directory (the repo root), so the printed command can be pasted as is. */
  cwd: string;
}

export interface RunningServer {
  readonly spec: ServerSpec;
  readonly pid: number;
  /** The bound port of each listener, in the order the child printed them. */
  readonly ports: number[];
  /** Resident memory of the whole process group, in bytes. */
  rssBytes(): number;
  /** CPU seconds used so far by the whole process group. */
  cpuSeconds(): number;
  /** Asks a sockserv child for server.stats() (SIGUSR2 → one `stats {json}` line). */
  stats(timeoutMs?: number): Promise<unknown>;
  stop(): Promise<void>;
}

const LISTENING = /^listening on tcp:\/\/(\[[^\]]+\]|[^:\s]+):(\d+)\s*$/;
const running = new Set<ChildProcess>();

export async function startServer(spec: ServerSpec, timeoutMs = 20_000): Promise<RunningServer> {
  // detached: the child leads a new process group; stdin is a pipe the child watches, so it
  // exits by itself if the harness dies without a chance to clean up.
  const child = spawn(spec.command, spec.args, { cwd: spec.cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('exit', () => running.delete(child));
  child.once('error', () => running.delete(child));

  const stderrTail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrTail.push(line);
    if (stderrTail.length > 20) stderrTail.shift();
  });
  const ports: number[] = [];
  const statsWaiters: Array<(value: unknown) => void> = [];
  let onListening: () => void = () => {};
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const listening = LISTENING.exec(line);
    if (listening) {
      ports.push(Number(listening[2]));
      onListening();
    } else if (line.startsWith('stats ')) {
      statsWaiters.shift()?.(JSON.parse(line.slice('stats '.length)));
    }
  });

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
      const done = (error?: Error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      onListening = () => {
        if (ports.length >= spec.listeners) done();
      };
      child.once('error', (error) => done(error));
      child.once('exit', (code, signal) => done(new Error(`exited (${signal ?? code}) before listening`)));
    });
  } catch (error) {
    killGroup(child, 'SIGKILL');
    const detail = stderrTail.length > 0 ? `\n${stderrTail.join('\n')}` : '';
    throw new Error(`server "${spec.name}" did not start: ${(error as Error).message}${detail}`);
  }

  const pid = child.pid!;
  return {
    spec,
    pid,
    ports,
    rssBytes: () => groupRssBytes(pid),
    cpuSeconds: () => groupCpuSeconds(pid),
    stats(statsTimeoutMs = 2000) {
      return new Promise((resolve) => {
        const timer = setTimeout(() => resolve(undefined), statsTimeoutMs);
        statsWaiters.push((value) => {
          clearTimeout(timer);
          resolve(value);
        });
        killGroupLeader(child, 'SIGUSR2');
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        killGroup(child, 'SIGTERM');
        const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
      killGroup(child, 'SIGKILL'); // anything the leader left behind (cluster workers)
      running.delete(child);
    },
  };
}

/** Stops every server still running (awaitable; used between and after scenarios). */
export async function stopAll(): Promise<void> {
  const children = [...running];
  for (const child of children) killGroup(child, 'SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 200));
  killAllNow();
}

/** Synchronous last resort (process 'exit', SIGINT): SIGKILL every server group we started. */
export function killAllNow(): void {
  for (const child of running) killGroup(child, 'SIGKILL');
  running.clear();
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function killGroupLeader(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    child.kill(signal);
  } catch {
    // already gone
  }
}
