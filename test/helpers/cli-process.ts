// Test helper: `sockserv` run as a user runs it — a child process whose stdout and stderr are
// collected, with bounded waits that fail with what the process printed. Every child is killed
// (SIGKILL) by killAll() if a test left it running.

import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WAIT_MS } from './net.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = 'dist/src/cli/main.js';
const LISTENING = /^listening on (tcp|tls):\/\/127\.0\.0\.1:(\d+)$/m;

const children = new Set<ChildProcess>();

/** Kills every CLI child still running (afterEach). */
export function killAll(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
}

export class Cli {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.child);
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
  }

  /** Waits for the `listening on` line; returns its scheme and port. */
  async listening(): Promise<{ scheme: string; port: number }> {
    await this.until(() => LISTENING.test(this.stdout), 'the listening line');
    const match = LISTENING.exec(this.stdout)!;
    return { scheme: match[1]!, port: Number(match[2]) };
  }

  /** Waits for the first stdout line and returns its port; stdout must be exactly `listening on tcp://127.0.0.1:PORT`. */
  async port(): Promise<number> {
    await this.until(() => this.stdout.includes('\n'), 'the listening line');
    const match = /^listening on tcp:\/\/127\.0\.0\.1:(\d+)\n$/.exec(this.stdout);
    if (!match) throw new Error(`unexpected stdout ${JSON.stringify(this.stdout)}; stderr ${this.tail()}`);
    return Number(match[1]);
  }

  /** Waits (bounded) for the process to exit; returns its exit code, failing if a signal killed it. */
  async exit(timeoutMs = WAIT_MS): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the CLI did not exit; stdout ${this.stdout}; stderr ${this.tail()}`)), timeoutMs);
    });
    try {
      const { code, signal } = await Promise.race([this.exited, timeout]);
      if (signal !== null) throw new Error(`the CLI was killed by ${signal}; stderr ${this.tail()}`);
      return code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Polls `done` every 10 ms; fails if the process exits first or after `timeoutMs`. */
  until(done: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + timeoutMs;
      const poll = () => {
        if (done()) return resolve();
        if (this.child.exitCode !== null || this.child.signalCode !== null || Date.now() > deadline) {
          return reject(new Error(`no ${what}: exit ${this.child.exitCode ?? this.child.signalCode}; stdout ${JSON.stringify(this.stdout)}; stderr ${this.tail()}`));
        }
        setTimeout(poll, 10);
      };
      poll();
    });
  }

  /** The end of stderr, for failure messages. */
  tail(chars = 2000): string {
    return this.stderr.length > chars ? `…${this.stderr.slice(-chars)}` : this.stderr;
  }
}
