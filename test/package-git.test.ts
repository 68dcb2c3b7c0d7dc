// sockserv installed from a git URL, as the README offers before the package is published:
// `npm install git+file://…` of a temporary repository holding this working tree (uncommitted
// edits included). npm clones it, installs its dependencies and devDependencies in the clone,
// runs `prepare` (the build), packs that and installs the tarball: the project gets dist/ and
// serves. Slow by nature — npm installs all of sockserv's devDependencies in its clone to build
// it, about a minute — which is why this is a file of its own rather than part of
// package.test.ts. Offline after `npm ci`: every package comes from the npm cache.

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freshClone } from './helpers/clone.js';
import { Registry, waitUntil } from './helpers/net.js';

const run = promisify(execFile);
const NPM_MS = 300_000;

const registry = new Registry();
let dir = '';
let server: ChildProcess | undefined;

afterAll(async () => {
  if (server?.exitCode === null) server.kill('SIGKILL');
  await registry.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('npm install git+file://<repository>: npm builds sockserv in its clone (prepare), and the project serves with it', async () => {
  dir = mkdtempSync(join(tmpdir(), 'sockserv-git-'));
  const repository = freshClone(join(dir, 'sockserv'), { withDependencies: false });
  const git = (...args: string[]) => run('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.invalid', '-c', 'commit.gpgsign=false', ...args], { cwd: repository });
  await git('init', '-q');
  await git('add', '-A');
  await git('commit', '-q', '-m', 'the working tree');

  const project = join(dir, 'app');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }, null, 2));
  writeFileSync(
    join(project, 'handler.js'),
    `import { BaseRequestHandler } from 'sockserv';\nexport default class Upper extends BaseRequestHandler {\n  handle() {\n    return this.request.toString().toUpperCase();\n  }\n}\n`,
  );
  // The environment carries --prefer-offline into the npm that installs the clone's own dependencies.
  await run('npm', ['install', `git+file://${repository}`, '--no-audit', '--no-fund', '--loglevel=error'], {
    cwd: project,
    timeout: NPM_MS,
    env: { ...process.env, npm_config_prefer_offline: 'true' },
  });
  expect(existsSync(join(project, 'node_modules/sockserv/dist/src/index.js'))).toBe(true);

  server = spawn(join(project, 'node_modules/.bin/sockserv'), ['serve', 'handler.js', '--port', '0', '--inline'], { cwd: project, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  server.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  await waitUntil(() => stdout.includes('\n') || server!.exitCode !== null, 'the git-installed sockserv listens');
  const port = Number(/^listening on tcp:\/\/127\.0\.0\.1:(\d+)\n$/.exec(stdout)?.[1]);
  const peer = await registry.peer(port);
  peer.write('from git\n');
  expect(await peer.untilLines(1)).toEqual(['FROM GIT']);
  const exited = new Promise((resolve) => server!.on('close', resolve));
  server.kill('SIGTERM');
  expect(await exited).toBe(0);
}, NPM_MS);
