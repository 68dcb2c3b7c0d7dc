// The RESP example handler (examples/resp/handler.ts, compiled: workers load dist/) spoken to by
// the real redis-cli (Debian's redis-tools), on the inline TCPServer and on ThreadingTCPServer
// with 2 workers. Part of `npm run test:system`: a missing redis-cli fails it, naming the package.
// The raw-RESP tests of the same handler are test/resp-server.test.ts (npm test).

import { spawn } from 'node:child_process';
import { pbkdf2Sync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type BaseServer, TCPServer, ThreadingTCPServer, encodeCommand, silentLogger } from '../../src/index.js';
import { TOOLS, requireTools } from './tools.js';

const HANDLER = fileURLToPath(new URL('../../dist/examples/resp/handler.js', import.meta.url));

function hash(password: string, salt: string, iterations: number): string {
  return pbkdf2Sync(password, salt, iterations, 32, 'sha256').toString('hex');
}
const PBKDF2_HEX = hash('secret', 'sockserv', 2000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs redis-cli with `args`, writing `input` to its stdin; rejects if it cannot be started. */
function redisCli(args: string[], input: string | Buffer = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'ENOENT' ? new Error(`redis-cli is missing: apt-get install ${TOOLS.redisCli.packages}`) : error);
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.on('error', () => {}); // redis-cli may exit before reading all of it
    child.stdin.end(input);
  });
}

describe('redis-cli', () => {
  test('is installed (Debian redis-tools)', async () => {
    requireTools(TOOLS.redisCli);
    const run = await redisCli(['--version']);
    expect(run.stdout).toMatch(/^redis-cli \d+\.\d+/);
  });
});

describe.each([
  ['TCPServer (inline)', TCPServer],
  ['ThreadingTCPServer (2 workers)', ThreadingTCPServer],
] as const)('RESP example on %s, through redis-cli', (_name, Server) => {
  let server: BaseServer;
  let port: number;

  beforeAll(async () => {
    server = new Server({ host: '127.0.0.1', port: 0 }, HANDLER, { framing: 'resp', workers: 2, logger: silentLogger });
    ({ port } = await server.listen());
  });

  afterAll(async () => {
    await server?.close();
  });

  test('redis-cli PING', async () => {
    expect(await redisCli(['-p', String(port), 'PING'])).toMatchObject({ code: 0, stdout: 'PONG\n' });
  });

  test('redis-cli ECHO', async () => {
    expect(await redisCli(['-p', String(port), 'ECHO', 'hello world'])).toMatchObject({ code: 0, stdout: 'hello world\n' });
  });

  test('redis-cli PBKDF2 secret sockserv 2000 matches node:crypto', async () => {
    const run = await redisCli(['-p', String(port), 'PBKDF2', 'secret', 'sockserv', '2000']);
    expect(run).toMatchObject({ code: 0, stdout: `${hash('secret', 'sockserv', 2000)}\n` });
  });

  test('redis-cli: an unknown command is an error reply, not a dropped connection', async () => {
    const run = await redisCli(['-p', String(port), 'NOPE', 'x']);
    expect(run.stdout).toBe("ERR unknown command 'NOPE'\n\n");
  });

  test('redis-cli: commands on stdin, one per line', async () => {
    const run = await redisCli(['-p', String(port)], 'PING\nECHO "a b"\nnope\nPBKDF2 secret sockserv 2000\nping again\n');
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(`PONG\na b\nERR unknown command 'nope'\n\n${PBKDF2_HEX}\nagain\n`);
  });

  test('redis-cli --pipe: 2000 pipelined commands, one of them unknown', async () => {
    const commands: Buffer[] = [];
    for (let i = 0; i < 1999; i++) {
      commands.push(encodeCommand(i % 3 === 0 ? ['PBKDF2', `p${i}`, 'salt', '50'] : i % 3 === 1 ? ['ECHO', `m${i}`] : ['PING']));
    }
    commands.splice(1000, 0, encodeCommand(['NOPE']));
    const run = await redisCli(['-p', String(port), '--pipe'], Buffer.concat(commands));
    expect(run.stdout).toContain('errors: 1, replies: 2000');
    expect(run.stderr).toContain("ERR unknown command 'NOPE'");
    expect(run.code).toBe(1); // redis-cli --pipe exits 1 when any reply was an error
  });
});
