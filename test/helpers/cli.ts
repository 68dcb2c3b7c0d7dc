// Test helper: `sockserv` run as a user runs it, a real child process whose stdout and stderr
// are recorded, with waits that fail loudly (showing both) instead of hanging. Every child is
// killed by killAll() if a test leaves it running.

import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WAIT_MS } from './net.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAIN = 'dist/src/cli/main.js';

const running = new Set<ChildProcess>();

/** SIGKILLs every child still running (afterEach). */
export function killAll(): void {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  running.clear();
}

export class Cli {
  readonly child: ChildProcess;
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [MAIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(this.child);
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.stdout += s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.stderr += s));
    this.exited = new Promise((resolve) => this.child.on('close', (code, signal) => resolve({ code, signal })));
  }

  /** Waits for the first stdout line and returns the port in it (`listening on tcp://127.0.0.1:PORT`). */
  async port(): Promise<number> {
    await this.until(() => this.stdout.includes('\n'), 'the listening line');
    const match = /^listening on tcp:\/\/127\.0\.0\.1:(\d+)\n$/.exec(this.stdout);
    if (!match) throw new Error(`unexpected stdout ${JSON.stringify(this.stdout)}; stderr ${this.stderr}`);
    return Number(match[1]);
  }

  /** Waits (bounded) for the process to exit; returns its code, failing if a signal killed it. */
  async exit(): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the CLI did not exit; stdout ${this.stdout}; stderr ${this.stderr}`)), WAIT_MS);
    });
    try {
      const { code, signal } = await Promise.race([this.exited, timeout]);
      if (signal !== null) throw new Error(`the CLI was killed by ${signal}; stderr ${this.stderr}`);
      return code;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Resolves once `done()` holds; fails if the process exits first or after WAIT_MS. */
  until(done: () => boolean, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + WAIT_MS;
      const poll = () => {
        if (done()) return resolve();
        if (this.child.exitCode !== null || this.child.signalCode !== null || Date.now() > deadline) {
          return reject(new Error(`no ${what}: exit ${this.child.exitCode}; stdout ${JSON.stringify(this.stdout)}; stderr ${this.stderr}`));
        }
        setTimeout(poll, 10);
      };
      poll();
    });
  }
}
