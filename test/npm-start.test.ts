// `npm start` as a newcomer runs it in a clone: with dist/ current it does not rebuild (tsc -b
// sees nothing newer than its last build, so no output file is written again), and the process
// npm starts is node itself (the script execs it), so a SIGINT to it reaches the server, which
// drains and exits — no shell in between to die and leave the server running.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers/cli-process.js';
import { Registry, WAIT_MS, waitUntil } from './helpers/net.js';

const registry = new Registry();
let npm: ChildProcess | undefined;
afterEach(async () => {
  // The whole group (npm and whatever it started), in case the test failed half-way.
  if (npm?.pid !== undefined && npm.exitCode === null) {
    try {
      process.kill(-npm.pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  await registry.cleanup();
});

/** The processes `pid` started (Linux: /proc/PID/task/PID/children). */
function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean).map(Number);
}

const commandLine = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);

test('npm start: no rebuild when dist/ is current; npm runs node itself, and a SIGINT to it stops the server', async () => {
  const built = join(ROOT, 'dist/src/cli/main.js');
  const before = statSync(built).mtimeMs;
  npm = spawn('npm', ['start', '--silent', '--', '--port', '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  npm.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  npm.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = new Promise<number | null>((resolve) => npm!.on('close', (code) => resolve(code)));
  await waitUntil(() => /listening on tcp:\/\/127\.0\.0\.1:\d+\n/.test(stdout) || npm!.exitCode !== null, 'npm start listens', 60_000);
  const port = Number(/listening on tcp:\/\/127\.0\.0\.1:(\d+)\n/.exec(stdout)?.[1]);
  expect(port).toBeGreaterThan(0);
  expect(statSync(built).mtimeMs).toBe(before); // tsc -b wrote nothing: dist/ was current

  const peer = await registry.peer(port);
  peer.write('hello\n');
  expect(await peer.untilLines(1)).toEqual(['hello']);

  // npm's one child is the server: node running the CLI, not a shell around it.
  const [child, ...others] = childrenOf(npm.pid!);
  expect(others).toEqual([]);
  expect(commandLine(child!)).toEqual([expect.stringMatching(/(^|\/)node$/), 'dist/src/cli/main.js', 'serve', ...commandLine(child!).slice(3)]);
  process.kill(child!, 'SIGINT');
  await peer.untilClosed(WAIT_MS);
  expect(await exited).toBe(0);
  expect(stderr).toContain('"msg":"stopped"');
  // And nothing listens any more.
  await expect(registry.peer(port)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
}, 90_000);
