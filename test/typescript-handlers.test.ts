// TypeScript handler modules served as written (src/handler-module.ts registers tsx's ESM hook
// in a thread the first time it imports a .ts/.mts handler): in worker threads (the pool) and
// inline on the main thread (the CLI's --inline, and TCPServer in a Node process of its own:
// jest refuses module.register()), from `new URL('./x.ts', import.meta.url)` and from
// the CLI. A module that cannot load — a syntax error, a CommonJS .ts — is ERR_HANDLER_LOAD
// naming its file, line and message. tsx strips types without checking them, so a type error is
// not a load error: only syntax errors are. .js, .mjs and .cjs handlers keep working.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ChildProcess, spawn } from 'node:child_process';
import { type BaseServer, type SockservError, ThreadingTCPServer, silentLogger } from '../src/index.js';
import { Cli, ROOT, killAll } from './helpers/cli-process.js';
import { Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(async () => {
  killAll();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) killGroup(child);
  await registry.cleanup();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** SIGKILL to a child's process group when it leads one (spawned detached), else to the child. */
function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

const fixtureUrl = (file: string) => new URL(`./fixtures/${file}`, import.meta.url);
const fixturePath = (file: string) => fileURLToPath(fixtureUrl(file));
/** The built sockserv the workers load, for modules in temp directories (which cannot resolve 'sockserv'). */
const SOCKSERV = new URL('../dist/src/index.js', import.meta.url).href;

/** A temp directory holding `files` (name → source); `type` writes a package.json with that "type". */
function project(files: Record<string, string>, type?: 'module' | 'commonjs'): string {
  const dir = mkdtempSync(join(tmpdir(), 'sockserv-ts-'));
  dirs.push(dir);
  if (type) writeFileSync(join(dir, 'package.json'), JSON.stringify({ type }));
  for (const [name, source] of Object.entries(files)) writeFileSync(join(dir, name), source);
  return dir;
}

/** Sends `lines` on one connection and resolves with the replies (one line each). */
async function ask(port: number, lines: string[]): Promise<string[]> {
  const peer = await registry.peer(port);
  peer.write(lines.map((l) => `${l}\n`).join(''));
  return peer.untilLines(lines.length);
}

async function loadError(server: BaseServer): Promise<SockservError> {
  registry.server(server);
  return (await server.listen().then(
    () => new Error('listen() resolved'),
    (e: unknown) => e,
  )) as SockservError;
}

// A class whose body does not parse: line 5 has the error (the `;` where `}` belongs).
const BROKEN_TS = `// broken on purpose
interface Reply { text: string }
export default class Broken {
  handle(): string {
    const reply: Reply = { text: 'x' ;
    return reply.text;
  }
}
`;

describe('TypeScript handler modules load as written', () => {
  test('ThreadingTCPServer with new URL("./typed-upper.ts", import.meta.url): 2 workers serve it, default and named exports', async () => {
    const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixtureUrl('typed-upper.ts'), { workers: 2, logger: silentLogger }));
    const { port } = await server.listen();
    expect(await ask(port, ['hello', 'world'])).toEqual(['HELLO (ts)', 'WORLD (ts)']);
    // Several connections at once, so both workers load it.
    const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => ask(port, [`c${i}`])));
    expect(replies.flat()).toEqual(Array.from({ length: 8 }, (_, i) => `C${i} (ts)`));

    const named = registry.server(
      new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixtureUrl('typed-upper.ts'), { workers: 2, exportName: 'Named', logger: silentLogger }),
    );
    expect(await ask((await named.listen()).port, ['x'])).toEqual(['named x']);
  });

  test('a .mts module, from a path string, on the pool', async () => {
    const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixturePath('typed-echo.mts'), { workers: 2, logger: silentLogger }));
    expect(await ask((await server.listen()).port, ['one'])).toEqual(['mts one']);
  });

  test('inline TCPServer with new URL("./typed-upper.ts", import.meta.url), in a Node process of its own', async () => {
    // Not in jest's process: jest refuses module.register(), and its loader is not Node's.
    const program = `
      import { TCPServer, silentLogger } from ${JSON.stringify(SOCKSERV)};
      const server = new TCPServer({ host: '127.0.0.1', port: 0 }, new URL(${JSON.stringify(fixtureUrl('typed-upper.ts').href)}), { logger: silentLogger });
      const { port } = await server.listen();
      process.stdout.write('listening on tcp://127.0.0.1:' + port + '\\n');
      process.once('SIGTERM', () => void server.close().then(() => process.exit(0)));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await waitUntil(() => stdout.includes('\n') || child.exitCode !== null, `the inline server listens (stderr ${stderr})`);
    const port = Number(/^listening on tcp:\/\/127\.0\.0\.1:(\d+)\n$/.exec(stdout)?.[1]);
    expect(port).toBeGreaterThan(0);
    expect(await ask(port, ['inline'])).toEqual(['INLINE (ts)']);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  test.each([
    ['the pool', ['--workers', '2']],
    ['--inline (the main thread)', ['--inline']],
  ])('sockserv serve typed-upper.ts on %s', async (_where, flags) => {
    const cli = new Cli(['serve', fixturePath('typed-upper.ts'), '--port', '0', ...flags]);
    const port = await cli.port();
    expect(await ask(port, ['cli'])).toEqual(['CLI (ts)']);
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
  });

  test('a type error is not a load error: tsx strips types without checking them, and the module serves', async () => {
    const dir = project(
      {
        'typo.ts': `import { BaseRequestHandler } from '${SOCKSERV}';
export default class Typo extends BaseRequestHandler {
  override handle(): string {
    const n: number = 'not a number';
    return \`typo \${n}\`;
  }
}
`,
      },
      'module',
    );
    const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, join(dir, 'typo.ts'), { workers: 1, logger: silentLogger }));
    expect(await ask((await server.listen()).port, ['x'])).toEqual(['typo not a number']);
  });
});

describe('a server program run by tsx: the workers inherit its hooks and still serve', () => {
  // tsx's CommonJS hook, which workers inherit through execArgv, once made piscina's require() of
  // the worker entry a second, CommonJS copy of sockserv: every request failed.
  test.each([
    ['tsx tsx-server.ts', join(ROOT, 'node_modules/.bin/tsx'), ['tsx-server.ts']],
    ['node --import tsx tsx-server.ts', process.execPath, ['--import', 'tsx', 'tsx-server.ts']],
  ])('%s', async (_how, command, args) => {
    const child = spawn(command, args, { cwd: fixturePath('.'), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await waitUntil(() => stdout.includes('\n') || child.exitCode !== null, 'the server listens');
    const [, port, pid] = (/^listening on tcp:\/\/127\.0\.0\.1:(\d+) pid (\d+)\n$/.exec(stdout) ?? []).map(Number);
    expect({ port, pid, stderr }).toEqual({ port: expect.any(Number), pid: expect.any(Number), stderr: '' });
    // Several connections, so that both workers answer.
    const replies = await Promise.all(Array.from({ length: 4 }, (_, i) => ask(port, [`tsx ${i}`])));
    expect(replies.flat()).toEqual(['TSX 0 (ts)', 'TSX 1 (ts)', 'TSX 2 (ts)', 'TSX 3 (ts)']);
    // The signal goes to the server's process itself. Sent to tsx's CLI (or its group), tsx relays it
    // and, when the child has not confirmed within 30 ms (a loaded CI machine), signals again and
    // then SIGKILLs it: exit 143 measured tsx's relay, not this server's close.
    process.kill(pid!, 'SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  });
});

describe('a TypeScript module that cannot load is ERR_HANDLER_LOAD with file, line and message', () => {
  test('a syntax error, on the pool: listen() rejects naming file:line:column and the parser’s message', async () => {
    const dir = project({ 'broken.ts': BROKEN_TS }, 'module');
    const file = join(dir, 'broken.ts');
    const error = await loadError(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, file, { workers: 2, logger: silentLogger }));
    expect(error.code).toBe('ERR_HANDLER_LOAD');
    expect(error.message).toContain(`${file}:5:38: Expected "}" but found ";"`);
  });

  test.each([
    ['the pool', ['--workers', '1']],
    ['--inline', ['--inline']],
  ])('a syntax error, sockserv serve on %s: exit 1, ERR_HANDLER_LOAD file:line:column on stderr', async (_where, flags) => {
    const dir = project({ 'broken.ts': BROKEN_TS }, 'module');
    const file = join(dir, 'broken.ts');
    const cli = new Cli(['serve', file, '--port', '0', ...flags]);
    expect(await cli.exit()).toBe(1);
    expect(cli.stderr).toContain('ERR_HANDLER_LOAD');
    expect(cli.stderr).toContain(`${file}:5:38: Expected "}" but found ";"`);
    expect(cli.stdout).toBe('');
  });

  test('a .js syntax error names its file, line and V8’s message too (located by esbuild: Node 20 does not say where)', async () => {
    const dir = project({ 'broken.js': 'export default class Broken {\n  handle() {\n    return {;\n  }\n}\n' }, 'module');
    const file = join(dir, 'broken.js');
    const error = await loadError(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, file, { workers: 1, logger: silentLogger }));
    expect(error.code).toBe('ERR_HANDLER_LOAD');
    expect(error.message).toContain(`${file}:3:13: SyntaxError: Unexpected token ';'`);
  });

  test('a .ts module that throws while it is imported: its own file and line, with the message', async () => {
    const dir = project({ 'throws.ts': `const ready: boolean = false;\nif (!ready) {\n  throw new Error('not configured');\n}\nexport default class Never { handle(): string { return ''; } }\n` }, 'module');
    const file = join(dir, 'throws.ts');
    const error = await loadError(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, file, { workers: 1, logger: silentLogger }));
    expect(error.code).toBe('ERR_HANDLER_LOAD');
    expect(error.message).toContain(`${file}:3:9: Error: not configured`);
  });

  test.each([
    ['a .ts file in a package without "type": "module"', 'handler.ts', 'commonjs' as const, /"type": "module"/],
    ['a .ts file with no package.json above it', 'handler.ts', undefined, /no package\.json above it/],
    ['a .cts file', 'handler.cts', 'module' as const, /a \.cts file is CommonJS/],
  ])('%s (CommonJS to Node 20): ERR_HANDLER_LOAD saying how to make it an ES module', async (_what, name, type, why) => {
    const dir = project({ [name]: 'export default class H { handle(): string { return "x"; } }\n' }, type);
    const error = await loadError(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, join(dir, name), { workers: 1, logger: silentLogger }));
    expect(error.code).toBe('ERR_HANDLER_LOAD');
    expect(error.message).toMatch(why);
    expect(error.message).toMatch(/ES modules/);
  });
});

describe('JavaScript handler modules keep working', () => {
  test.each([
    ['.js', 'upper.js', 'HELLO'],
    ['.mjs', 'plain-echo.mjs', 'mjs hello'],
    ['.cjs', 'plain-echo.cjs', 'cjs hello'],
  ])('%s on the pool and inline (CLI)', async (_ext, file, reply) => {
    const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixturePath(file), { workers: 2, logger: silentLogger }));
    expect(await ask((await server.listen()).port, ['hello'])).toEqual([reply]);
    const cli = new Cli(['serve', fixturePath(file), '--port', '0', '--inline']);
    expect(await ask(await cli.port(), ['hello'])).toEqual([reply]);
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
  });
});
