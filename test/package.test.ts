// The package as a newcomer gets it, following the README: in a fresh clone (no dist/), `npm pack`
// builds (the prepare script) and ships dist/ with the sources its maps point at and a LICENSE;
// `npm install` of that tarball into a fresh ESM project; then examples/quickstart's handler.ts
// served with `npx sockserv serve`, its server.ts run with `npx tsx server.ts` (tsx installed by
// the project itself) and, in a folder install (`npm install ../sockserv`, which hoists nothing),
// with `node --import sockserv/register`; the failures a newcomer meets first (a class that does
// not extend BaseRequestHandler, a port in use) are one line each; `tsc` type-checks against the
// published .d.ts. The git-URL install is test/package-git.test.ts. Dependencies come from the npm
// cache `npm ci` filled (--prefer-offline): no network needed after `npm ci`.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './helpers/cli-process.js';
import { freshClone } from './helpers/clone.js';
import { Registry, WAIT_MS, waitUntil } from './helpers/net.js';

const run = promisify(execFile);
const NPM_MS = 240_000;
const OFFLINE = ['--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'];

const registry = new Registry();
const children: ChildProcess[] = [];
let dir = '';
let clone = '';
/** The project that installed the tarball. */
let project = '';
/** The project that installed the clone's folder. */
let linked = '';
let packed: string[] = [];

/** The version of a package installed in this clone (so that the cache has it). */
const installed = (name: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

/** A fresh ESM project in `at`, with the quickstart's files. */
function newProject(at: string): string {
  mkdirSync(at);
  writeFileSync(join(at, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }, null, 2));
  for (const file of ['handler.ts', 'server.ts', 'tsconfig.json']) copyFileSync(join(ROOT, 'examples/quickstart', file), join(at, file));
  return at;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sockserv-pack-'));
  clone = freshClone(join(dir, 'sockserv'), { withDependencies: true });
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: clone, timeout: NPM_MS });
  const [pack] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = pack!.files.map((file) => file.path);
  project = newProject(join(dir, 'app'));
  linked = newProject(join(dir, 'linked'));
  // tsx, typescript and @types/node as the project's own devDependencies (the README's `npm install -D tsx`).
  const devDependencies = Object.fromEntries(['tsx', 'typescript', '@types/node'].map((name) => [name, installed(name)]));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', devDependencies }, null, 2));
  await Promise.all([
    run('npm', ['install', join(dir, pack!.filename), ...OFFLINE], { cwd: project, timeout: NPM_MS }),
    run('npm', ['install', clone, ...OFFLINE], { cwd: linked, timeout: NPM_MS }),
  ]);
  writeFileSync(
    join(project, 'handler.js'),
    `import { BaseRequestHandler } from 'sockserv';\nexport default class Reverse extends BaseRequestHandler {\n  handle() {\n    return [...this.request.toString()].reverse().join('');\n  }\n}\n`,
  );
  writeFileSync(join(project, 'forgot.ts'), `export default class Forgot {\n  handle(): string {\n    return 'never';\n  }\n}\n`);
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

/** Runs `command args` in `cwd`; resolves with its process once stdout says `listening on tcp://127.0.0.1:PORT`. */
async function listening(
  command: string,
  args: string[],
  { cwd = project, env = {} }: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ child: ChildProcess; port: number; stderr: () => string }> {
  // A process group of its own: npx and tsx's CLI do not pass SIGTERM on to the command they run.
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, detached: true });
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

/** Signals npx (or tsx) and the server it runs: their process group. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM to the group; resolves with the server's stderr once every process of the group has ended. */
async function stop(server: { child: ChildProcess; stderr: () => string }): Promise<string> {
  const closed = new Promise<void>((resolve) => server.child.once('close', () => resolve()));
  killGroup(server.child, 'SIGTERM');
  await closed;
  return server.stderr();
}

const lines = (text: string) => text.replace(/\n$/, '').split('\n');

/** Runs a command to its end: exit code and output, whether it failed or not. */
function outcome(command: string, args: string[], cwd = project): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(command, args, { cwd, timeout: 60_000 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

test('npm pack in a fresh clone builds and ships dist/, the sources its maps name, LICENSE and README; nothing of tests, bench or the build', () => {
  for (const file of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'dist/src/register.js', 'dist/workers/handler-host.js', 'dist/stress/cli.js', 'LICENSE', 'README.md']) {
    expect(packed).toContain(file);
  }
  expect(packed.filter((file) => /^(test|bench|examples|docs|dist\/bench|dist\/examples)\/|tsbuildinfo/.test(file))).toEqual([]);
  // Every source map names files the package ships: a stack or a debugger lands on real lines.
  const maps = packed.filter((file) => file.endsWith('.js.map'));
  expect(maps.length).toBeGreaterThan(40);
  for (const map of maps) {
    const { sources } = JSON.parse(readFileSync(join(clone, map), 'utf8')) as { sources: string[] };
    for (const source of sources) expect(packed).toContain(normalize(join(dirname(map), source)));
  }
  expect(readFileSync(join(project, 'node_modules/sockserv/LICENSE'), 'utf8')).toMatch(/^MIT License/);
});

test('served as the README shows, all at once: npx sockserv serve (handler.ts on the pool, handler.js inline), server.ts by npx tsx, and by node --import sockserv/register in a folder install', async () => {
  const port0 = { env: { PORT: '0' } };
  const ways = [
    { how: 'npx sockserv serve handler.ts', start: listening('npx', ['sockserv', 'serve', 'handler.ts', '--port', '0', '--workers', '2']), reply: 'HELLO' },
    { how: 'npx sockserv serve handler.js --inline', start: listening('npx', ['sockserv', 'serve', 'handler.js', '--port', '0', '--inline']), reply: 'olleh' },
    // (`node --import tsx server.ts` is the same as tsx's CLI here; test/typescript-handlers.test.ts runs both.)
    { how: 'npx tsx server.ts', start: listening('npx', ['tsx', 'server.ts'], port0), reply: 'HELLO' },
    // A folder install hoists nothing: no tsx beside sockserv, and sockserv/register finds its own.
    {
      how: 'node --import sockserv/register server.ts, folder install',
      start: listening(process.execPath, ['--import', 'sockserv/register', 'server.ts'], { cwd: linked, ...port0 }),
      reply: 'HELLO',
    },
  ];
  expect(existsSync(join(linked, 'node_modules/tsx'))).toBe(false);
  const servers = await Promise.all(ways.map((way) => way.start));
  const replies = await Promise.all(servers.map((server) => ask(server.port, 'hello')));
  expect(Object.fromEntries(ways.map((way, i) => [way.how, replies[i]]))).toEqual(Object.fromEntries(ways.map((way) => [way.how, way.reply])));
  const stderr = await Promise.all(servers.map(stop));
  // The CLI logs (its last line, after a graceful drain, is 'stopped'); the programs print nothing there.
  expect(stderr[0]).toContain('"msg":"stopped"');
  expect(stderr[1]).toContain('"msg":"stopped"');
  expect(stderr.slice(2)).toEqual(['', '']);
}, NPM_MS);

test('sockserv serve --help exits 0; what a newcomer gets wrong first is one line and exit 1: a class that does not extend BaseRequestHandler, a port in use', async () => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const { port } = taken.address() as AddressInfo;
  try {
    const sockserv = join(project, 'node_modules/.bin/sockserv'); // what npx runs, without npx's second of start-up
    const [help, forgot, used] = await Promise.all([
      outcome(sockserv, ['serve', '--help']),
      outcome(sockserv, ['serve', 'forgot.ts', '--port', '0']),
      outcome(sockserv, ['serve', 'handler.ts', '--port', String(port)]),
    ]);
    expect(help).toMatchObject({ code: 0, stderr: '', stdout: expect.stringMatching(/^usage: sockserv serve <handler-module>/) });
    expect(forgot.code).toBe(1);
    expect(forgot.stderr).toMatch(/^sockserv: ERR_HANDLER_INVALID: class Forgot \(export "default" of \S+forgot\.ts\) does not extend [^\n]*BaseRequestHandler[^\n]*\n$/);
    expect(used.code).toBe(1);
    expect(used.stderr).toMatch(new RegExp(`^sockserv: EADDRINUSE: cannot listen on 127\\.0\\.0\\.1:${port}: [^\\n]+\\n$`));
  } finally {
    await new Promise((resolve) => taken.close(resolve));
  }
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
  writeFileSync(join(project, 'misuse.ts'), `import { ThreadingTCPServer } from 'sockserv';\nconst port: string = new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, 'h.ts').address.port;\nexport default port;\n`);
  // The quickstart's tsconfig.json takes every .ts file here: the one error is misuse.ts's.
  const checked = await outcome(join(project, 'node_modules/.bin/tsc'), ['-p', 'tsconfig.json']);
  expect(checked.code).toBe(2);
  expect(lines(checked.stdout)).toEqual([expect.stringMatching(/^misuse\.ts\(2,7\): error TS2322: Type 'number' is not assignable to type 'string'/)]);
}, NPM_MS);
