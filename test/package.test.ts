// The package as users get it: `npm pack`, then `npm install` of the tarball into a fresh ESM
// project in a temp folder, where examples/quickstart's TypeScript handler and a plain .js one
// are served with `npx sockserv serve` and spoken to over TCP, the quickstart's server.ts runs
// with `node --import tsx/esm`, and `tsc` type-checks a program importing `sockserv` and `sockserv/metrics`
// against the published .d.ts files (and rejects one that misuses them). Dependencies come from
// the npm cache that `npm ci` filled (--prefer-offline): no network needed after `npm ci`.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './helpers/cli-process.js';
import { Registry, WAIT_MS, waitUntil } from './helpers/net.js';

const run = promisify(execFile);
const NPM_MS = 240_000;

const registry = new Registry();
const children: ChildProcess[] = [];
let dir = '';
let project = '';

/** The version of a package installed in this clone (so that the cache has it). */
const installed = (name: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sockserv-pack-'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, timeout: NPM_MS });
  const tarball = join(dir, (JSON.parse(stdout) as Array<{ filename: string }>)[0]!.filename);
  project = join(dir, 'app');
  await run('mkdir', [project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }, null, 2));
  await run(
    'npm',
    ['install', tarball, `typescript@${installed('typescript')}`, `@types/node@${installed('@types/node')}`, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'],
    { cwd: project, timeout: NPM_MS },
  );
  for (const file of ['handler.ts', 'server.ts', 'tsconfig.json']) copyFileSync(join(ROOT, 'examples/quickstart', file), join(project, file));
  writeFileSync(
    join(project, 'handler.js'),
    `import { BaseRequestHandler } from 'sockserv';\nexport default class Reverse extends BaseRequestHandler {\n  handle() {\n    return [...this.request.toString()].reverse().join('');\n  }\n}\n`,
  );
}, NPM_MS);

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) killGroup(child, 'SIGKILL');
  await registry.cleanup();
});

// Asynchronous: removing a whole npm install synchronously can keep the event loop from turning
// for longer than the suite's loop watchdog allows (2 s).
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs `command args` in the project; resolves with its process once stdout says `listening on tcp://127.0.0.1:PORT`. */
async function listening(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ child: ChildProcess; port: number; stderr: () => string }> {
  // A process group of its own: npx does not pass SIGTERM on to the command it runs.
  const child = spawn(command, args, { cwd: project, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached: true });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  await waitUntil(() => /listening on tcp:\/\/127\.0\.0\.1:\d+\n/.test(stdout) || child.exitCode !== null, `${command} ${args.join(' ')} listens`, 60_000).catch(
    () => {},
  );
  const match = /listening on tcp:\/\/127\.0\.0\.1:(\d+)\n/.exec(stdout);
  if (!match) throw new Error(`${command} ${args.join(' ')}: no listening line; exit ${child.exitCode}; stdout ${stdout}; stderr ${stderr}`);
  return { child, port: Number(match[1]), stderr: () => stderr };
}

async function ask(port: number, line: string): Promise<string> {
  const peer = await registry.peer(port);
  peer.write(`${line}\n`);
  const [reply] = await peer.untilLines(1, WAIT_MS);
  return reply!;
}

/** Signals npx and the server it runs (their process group). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM to the group; resolves with the server's stderr once it has drained and every process of the group has ended. */
async function stop(server: { child: ChildProcess; stderr: () => string }): Promise<string> {
  const closed = new Promise<void>((resolve) => server.child.once('close', () => resolve()));
  killGroup(server.child, 'SIGTERM');
  await closed;
  return server.stderr();
}

test('npx sockserv serve handler.ts (the quickstart, as written) and handler.js, on the pool and inline', async () => {
  const ts = await listening('npx', ['sockserv', 'serve', 'handler.ts', '--port', '0', '--workers', '2']);
  const js = await listening('npx', ['sockserv', 'serve', 'handler.js', '--port', '0', '--inline']);
  expect(await ask(ts.port, 'hello')).toBe('HELLO');
  expect(await ask(js.port, 'hello')).toBe('olleh');
  // 'stopped' is the CLI's last line after a graceful drain (then it exits 0).
  expect(await stop(ts)).toContain('"msg":"stopped"');
  expect(await stop(js)).toContain('"msg":"stopped"');
}, NPM_MS);

test('the quickstart server.ts runs with node --import tsx/esm, its workers loading handler.ts', async () => {
  const server = await listening(process.execPath, ['--import', 'tsx/esm', 'server.ts'], { PORT: '0' });
  expect(await ask(server.port, 'from server.ts')).toBe('FROM SERVER.TS');
  await stop(server);
}, NPM_MS);

test('tsc type-checks a program importing sockserv and sockserv/metrics with the published .d.ts, and rejects a misuse', async () => {
  writeFileSync(
    join(project, 'program.ts'),
    `import { BaseRequestHandler, ErrorCodes, ThreadingTCPServer, markNotReady, serveHealth, type ServerStats } from 'sockserv';
import { createMetricsRegistry, serveMetrics, type MetricsEndpoint } from 'sockserv/metrics';

export class Echo extends BaseRequestHandler {
  override handle(): string {
    return this.request.toString();
  }
}

export async function main(): Promise<void> {
  const server = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, new URL('./handler.ts', import.meta.url), { workers: 2, framing: 'line' });
  const health = await serveHealth([server], { port: 0 });
  const { port } = await server.listen();
  const metrics: MetricsEndpoint = await serveMetrics([server], { port: 0 });
  const stats: ServerStats = server.stats();
  const ready: boolean = server.serving;
  markNotReady(server);
  console.log(port, health.url, metrics.url, stats.requestsOk, ready, ErrorCodes.HANDLER_LOAD, createMetricsRegistry([server]).contentType);
  await server.close();
}
`,
  );
  const tsc = join(project, 'node_modules/.bin/tsc');
  // The quickstart's tsconfig.json takes every .ts file here: first without misuse.ts, then with it.
  await expect(run(tsc, ['-p', 'tsconfig.json'], { cwd: project })).resolves.toBeDefined();
  writeFileSync(join(project, 'misuse.ts'), `import { ThreadingTCPServer } from 'sockserv';\nconst port: string = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, 'h.ts').address.port;\nexport default port;\n`);
  const failed = await run(tsc, ['-p', 'tsconfig.json'], { cwd: project }).then(
    () => '',
    (error: { stdout: string }) => error.stdout,
  );
  expect(failed).toMatch(/misuse\.ts\(2,7\): error TS2322: Type 'number' is not assignable to type 'string'/);
}, NPM_MS);
