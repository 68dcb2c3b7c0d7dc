// The event-loop watchdog (test/setup/loop-watchdog*.mjs) proven on child processes — never on
// this jest process itself: a process whose main thread livelocks (a nextTick loop, an endless
// synchronous loop) is killed at the bound — 2 s of its main thread's own time, which on a loaded
// machine excludes the time it waited for a CPU — with the looping function named in its stderr
// and in the report file; one that blocks for less than the bound is left alone, and the watcher
// thread never keeps a finished process alive. Last, a whole jest run of a livelocked test file
// (test/fixtures/livelock-jest.ts) reports that file failed, with the stack in its output.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers/cli-process.js';
import { waitUntil } from './helpers/net.js';

const REGISTER = join(ROOT, 'test/setup/loop-watchdog-register.mjs');
/**
 * The watchdog's bound (2 s of the main thread's own time), its polling and sampling, and slack.
 * Own time: on a loaded machine the time a child waited for a CPU (its report says how long) comes
 * on top, as the watchdog does not count it.
 */
const DIES_WITHIN_MS = 5000;
const REPORT_LINE = /has not turned its event loop for (\d+) ms of its own time \(bound 2000 ms; it also waited (\d+) ms for a CPU, up to this report\)/;

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  // The whole process group: a jest child leaves worker processes of its own behind otherwise.
  for (const child of children.splice(0)) {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Run {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  reportDir: string;
  exitedAt: number;
}

/** `node --import <watchdog> -e script`, with the reports going to a fresh directory. */
function run(script: string, args: string[] = ['--import', REGISTER, '-e', script], env: NodeJS.ProcessEnv = {}): Run {
  const reportDir = mkdtempSync(join(tmpdir(), 'sockserv-watchdog-test-'));
  dirs.push(reportDir);
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    detached: true, // a process group of its own, killed whole by afterEach
    stdio: ['ignore', 'pipe', 'pipe'],
    // The children's watchdog kills with the defaults whatever this run's (a probe run sets SOCKSERV_LOOP_WATCHDOG_LOG).
    env: { ...process.env, JEST_WORKER_ID: undefined, SOCKSERV_LOOP_WATCHDOG_MS: undefined, SOCKSERV_LOOP_WATCHDOG_LOG: undefined, SOCKSERV_LOOP_WATCHDOG_DIR: reportDir, ...env },
  });
  children.push(child);
  const result: Run = { child, stdout: '', stderr: '', reportDir, exitedAt: -1 };
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (result.stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (result.stderr += s));
  child.on('close', () => (result.exitedAt = performance.now()));
  return result;
}

async function exited(r: Run, timeoutMs = 60_000): Promise<void> {
  await waitUntil(() => r.exitedAt >= 0, `the child to exit; stdout ${JSON.stringify(r.stdout)}; stderr ${JSON.stringify(r.stderr.slice(-2000))}`, timeoutMs);
}

function report(r: Run): string {
  const files = readdirSync(r.reportDir);
  expect(files).toHaveLength(1);
  return readFileSync(join(r.reportDir, files[0]!), 'utf8');
}

describe('loop watchdog', () => {
  test.each([
    ['a nextTick loop', 'spinOnNextTick', 'function spinOnNextTick() { process.nextTick(spinOnNextTick); }'],
    ['a microtask loop', 'spinOnMicrotask', 'function spinOnMicrotask() { queueMicrotask(spinOnMicrotask); }'],
    ['an endless synchronous loop', 'spinForever', 'function spinForever() { for (;;); }'],
  ])('a process livelocked in %s is killed within seconds, its stderr and report naming the looping function', async (_what, name, definition) => {
    const r = run(`${definition}\nsetTimeout(() => { process.stdout.write(\`ready \${Date.now()}\\n\`); ${name}(); }, 100);`);
    await exited(r);
    expect(r.child.signalCode).toBe('SIGKILL');
    expect(r.stderr).toMatch(REPORT_LINE);
    const [, ownMs, waitedMs] = REPORT_LINE.exec(r.stderr)!;
    // It fired at the bound, in the main thread's own time…
    expect(Number(ownMs)).toBeGreaterThanOrEqual(2000);
    expect(Number(ownMs)).toBeLessThan(3000);
    // …and the report was out (then the kill) within DIES_WITHIN_MS of the loop's start, by the
    // child's own clock (the report file is named <pid>-<Date.now()>), less its wait for a CPU.
    const readyAt = Number(/^ready (\d+)$/m.exec(r.stdout)![1]);
    const [file] = readdirSync(r.reportDir);
    const reportedAt = Number(/^\d+-(\d+)\.txt$/.exec(file!)![1]);
    expect(reportedAt - readyAt - Number(waitedMs)).toBeLessThan(DIES_WITHIN_MS);
    expect(r.stderr).toContain(`at ${name} ([eval]:1:`);
    expect(r.stderr).toContain(`This report is also in ${join(r.reportDir, file!)}.`);
    expect(report(r)).toContain(`at ${name} ([eval]:1:`);
  }, 60_000);

  test('synchronous work shorter than the bound is left alone, and the watcher thread does not keep a finished process alive', async () => {
    const r = run(`process.stdout.write('ready\\n'); const end = Date.now() + 1500; while (Date.now() < end); setTimeout(() => process.stdout.write('done\\n'), 100);`);
    await exited(r);
    expect({ code: r.child.exitCode, signal: r.child.signalCode, stdout: r.stdout, stderr: r.stderr }).toEqual({ code: 0, signal: null, stdout: 'ready\ndone\n', stderr: '' });
    expect(readdirSync(r.reportDir)).toEqual([]);
  });

  test('in jest: a livelocked test file fails (its worker process is killed), with the stack and the test name in the output', async () => {
    const jest = join(ROOT, 'node_modules/jest/bin/jest.js');
    const r = run('', ['--experimental-vm-modules', jest, '--ci', '--testMatch', '**/fixtures/livelock-jest.ts', '--testPathIgnorePatterns', '/node_modules/']);
    await exited(r, 60_000);
    expect(r.child.exitCode).toBe(1);
    expect(r.stderr).toContain('livelock-jest.ts › a livelock.');
    expect(r.stderr).toMatch(/at spinOnNextTick \(file:\/\/\S+\/test\/fixtures\/livelock-jest\.ts:\d+:\d+\)/);
    expect(r.stderr).toMatch(/FAIL test\/fixtures\/livelock-jest\.ts[\s\S]*A jest worker process \(pid=\d+\) was terminated by another process: signal=SIGKILL/);
    // The reporter puts the report into the failure itself (jest stops forwarding a killed worker's stderr).
    expect(r.stderr).toMatch(/A jest worker process \(pid=\d+\) was terminated[\s\S]*The loop watchdog killed it \(\S+\.txt\):[\s\S]*at spinOnNextTick/);
    expect(r.stderr).toMatch(/Test Suites: 1 failed, 1 total/);
    expect(report(r)).toMatch(/at spinOnNextTick/);
  }, 90_000);
});
