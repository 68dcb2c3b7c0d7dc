// The `sockserv` command as people expect of git, npm and node: --help / -h on every command
// exits 0 with that command's usage alone on stdout, defaults shown and every option described;
// an unknown option or command is one line on stderr naming the closest one, exit 2; a startup
// failure (port in use, permission denied, missing handler file) is one line with a stable code
// and no stack unless --log-level debug, exit 1. The compiled CLI, in a child process.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ROOT } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';

const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function sockserv(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The lines of `text`, without the final newline's empty one. */
const lines = (text: string) => text.replace(/\n$/, '').split('\n');

/** Every `serve` option: each must be described in the help. */
const SERVE_OPTIONS = [
  '--export', '--host', '--port', '--udp', '--unix', '--tls-cert', '--tls-key', '--proxy-protocol', '--framing', '--workers',
  '--inline', '--inline-below-micros', '--processes', '--max-frame-bytes', '--max-client-memory', '--shutdown-timeout',
  '--drain-delay', '--log-level', '--metrics-port', '--metrics-host', '--health-port', '--health-host',
];
const STRESS_OPTIONS = [
  '--connections', '--requests', '--duration', '--pipeline', '--payload', '--payload-file', '--mix', '--mix-file',
  '--framing', '--new-connection', '--rate', '--warmup', '--timeout', '--json', '--max-p99', '--min-rps', '--allow-remote',
];

/** The description the help gives `option`: the text after it on its line, and the lines it wraps onto. */
function described(help: string, option: string): string {
  const all = lines(help);
  const at = all.findIndex((l) => new RegExp(`^\\s+(-\\w, )?${option}\\b`).test(l));
  if (at === -1) throw new Error(`${option} is not in the help:\n${help}`);
  const indent = all[at]!.search(/\S/);
  const wrapped = [];
  for (let i = at + 1; i < all.length && all[i]!.search(/\S/) > indent + 4; i++) wrapped.push(all[i]!.trim());
  return [all[at]!.replace(new RegExp(`^\\s+(-\\w, )?${option}( [A-Z]+)?`), '').trim(), ...wrapped].join(' ');
}

describe('--help', () => {
  test.each([[['--help']], [['-h']], [['help']]])('sockserv %j: the commands, on stdout, exit 0', async (args) => {
    const run = await sockserv(...args);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^usage: sockserv <command>/);
    expect(run.stdout).toMatch(/^\s+serve\s+\S/m);
    expect(run.stdout).toMatch(/^\s+stress\s+\S/m);
    expect(run.stdout).not.toContain('--max-frame-bytes'); // commands' options are their own help's
  });

  test.each([
    [['serve', '--help']],
    [['serve', '-h']],
    [['help', 'serve']],
    [['serve', 'handler.js', '--port', '0', '--help']],
  ])('sockserv %j: serve usage alone, on stdout, exit 0', async (args) => {
    const run = await sockserv(...args);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^usage: sockserv serve <handler-module> \[options\]\n/);
    expect(run.stdout).not.toContain('sockserv stress');
  });

  test.each([[['stress', '--help']], [['stress', '-h']], [['help', 'stress']]])('sockserv %j: stress usage alone, on stdout, exit 0', async (args) => {
    const run = await sockserv(...args);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^usage: sockserv stress HOST:PORT \[options\]\n/);
    expect(run.stdout).not.toContain('sockserv serve');
  });

  test('serve --help describes every option and shows the defaults', async () => {
    const { stdout } = await sockserv('serve', '--help');
    for (const option of SERVE_OPTIONS) expect(described(stdout, option)).toMatch(/\w{3,}/);
    expect(described(stdout, '--host')).toContain('default: 127.0.0.1');
    expect(described(stdout, '--port')).toContain('default: 8001');
    expect(described(stdout, '--workers')).toContain(`default: one per core, ${availableParallelism()} here`);
    expect(described(stdout, '--framing')).toContain('default: line');
    expect(described(stdout, '--export')).toContain('default: default');
    expect(described(stdout, '--max-frame-bytes')).toContain('default: 1048576');
    expect(described(stdout, '--shutdown-timeout')).toContain('default: 10000');
    expect(described(stdout, '--log-level')).toContain('default: info');
  });

  test('stress --help describes every option and shows the defaults', async () => {
    const { stdout } = await sockserv('stress', '--help');
    for (const option of STRESS_OPTIONS) expect(described(stdout, option)).toMatch(/\w{3,}/);
    expect(described(stdout, '--connections')).toContain('default: 50');
    expect(described(stdout, '--pipeline')).toContain('default: 1');
    expect(described(stdout, '--duration')).toContain('default: 10');
  });

  test('--version prints the package version', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(await sockserv('--version')).toEqual({ code: 0, stdout: `${version}\n`, stderr: '' });
  });
});

describe('usage errors: one line on stderr, exit 2', () => {
  test.each([
    [['serve', fixture('upper'), '--prot', '8001'], 'sockserv serve: unknown option --prot (did you mean --port?)'],
    [['serve', fixture('upper'), '--wrokers', '2'], 'sockserv serve: unknown option --wrokers (did you mean --workers?)'],
    [['serve', fixture('upper'), '-port', '8001'], 'sockserv serve: unknown option -port (did you mean --port?)'],
    [['serve', fixture('upper'), '--max-frame', '9'], 'sockserv serve: unknown option --max-frame (did you mean --max-frame-bytes?)'],
    [['serve', fixture('upper'), '--zzzzzz'], 'sockserv serve: unknown option --zzzzzz (sockserv serve --help lists the options)'],
    [['stress', '127.0.0.1:9', '--conections', '2'], 'sockserv stress: unknown option --conections (did you mean --connections?)'],
    [['serv', 'handler.js'], 'sockserv: unknown command serv (did you mean serve?)'],
    [['frobnicate'], 'sockserv: unknown command frobnicate (sockserv --help lists the commands)'],
    [['serve', fixture('upper'), '--port'], 'sockserv serve: --port needs a value'],
  ])('%j', async (args, line) => {
    const run = await sockserv(...args);
    expect(run).toEqual({ code: 2, stdout: '', stderr: `${line}\n` });
  });
});

describe('startup failures: one line with a stable code, exit 1; the stack only with --log-level debug', () => {
  let taken: Server;
  let port = 0;
  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    port = (taken.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => taken.close(() => resolve())));

  test('a port in use: EADDRINUSE', async () => {
    for (const flags of [['--workers', '1'], ['--inline']]) {
      const run = await sockserv('serve', fixture('upper'), '--port', String(port), ...flags);
      expect(run.code).toBe(1);
      expect(run.stdout).toBe('');
      expect(lines(run.stderr)).toEqual([expect.stringMatching(new RegExp(`^sockserv: EADDRINUSE: .*127\\.0\\.0\\.1:${port}.*another port`))]);
    }
  });

  test('--log-level debug adds the stack', async () => {
    const run = await sockserv('serve', fixture('upper'), '--port', String(port), '--inline', '--log-level', 'debug');
    expect(run.code).toBe(1);
    expect(lines(run.stderr)[0]).toMatch(/^sockserv: EADDRINUSE: /);
    expect(run.stderr).toMatch(/^\s+at /m);
  });

  test('a socket path where it may not be created: EACCES', async () => {
    const run = await sockserv('serve', fixture('upper'), '--unix', '/proc/sockserv-test.sock', '--inline');
    expect(run.code).toBe(1);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^sockserv: EACCES: .*\/proc\/sockserv-test\.sock/)]);
  });

  test('a missing handler file: the path as given and resolved, the code once, nothing of sockserv inside', async () => {
    for (const flags of [['--workers', '1'], ['--inline']]) {
      const run = await sockserv('serve', 'no-such-handler.js', '--port', '0', ...flags);
      expect(run.code).toBe(1);
      expect(lines(run.stderr)).toEqual([`sockserv: ERR_HANDLER_LOAD: cannot load handler module ${ROOT}no-such-handler.js: no such file`]);
    }
  });
});
