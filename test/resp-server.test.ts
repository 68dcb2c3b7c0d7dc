// The RESP example handler (examples/resp/handler.ts, compiled: workers load dist/) served with
// framing 'resp' by the inline TCPServer and by ThreadingTCPServer on 2 workers, spoken to with
// raw RESP bytes. The real redis-cli's side is test/system/redis-cli.test.ts (npm run test:system).

import { pbkdf2Sync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { type BaseServer, TCPServer, ThreadingTCPServer, encodeCommand, silentLogger } from '../src/index.js';
import { exchange, open } from './helpers/client.js';

const HANDLER = fileURLToPath(new URL('../dist/examples/resp/handler.js', import.meta.url));

function hash(password: string, salt: string, iterations: number): string {
  return pbkdf2Sync(password, salt, iterations, 32, 'sha256').toString('hex');
}

function bulk(text: string): string {
  return `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
}

/** Writes each request on one connection and waits for its reply before sending the next. */
async function oneAtATime(port: number, requests: Array<[request: string | Buffer, reply: string | Buffer]>): Promise<void> {
  const socket = await open(port);
  let received = Buffer.alloc(0);
  let wake: (() => void) | undefined;
  socket.on('data', (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    wake?.();
  });
  try {
    for (const [request, reply] of requests) {
      const expected = Buffer.from(reply as string, 'latin1');
      socket.write(request);
      while (received.length < expected.length) await new Promise<void>((resolve) => (wake = resolve));
      expect(received.toString('latin1')).toBe(expected.toString('latin1'));
      received = Buffer.alloc(0);
    }
  } finally {
    socket.destroy();
  }
}

// Requests and their exact replies.
const PBKDF2_HEX = hash('secret', 'sockserv', 2000);
const BINARY = Buffer.from('a\r\nb\0\xff', 'latin1');
const CASES: Array<[request: string | Buffer, reply: string | Buffer]> = [
  ['*1\r\n$4\r\nPING\r\n', '+PONG\r\n'],
  [encodeCommand(['ping', 'hello']), bulk('hello')],
  ['PING\r\n', '+PONG\r\n'],
  ['ping "hello world"\r\n', bulk('hello world')],
  [encodeCommand(['ECHO', 'hi']), bulk('hi')],
  [encodeCommand(['eChO', '']), '$0\r\n\r\n'],
  [encodeCommand(['ECHO', BINARY]), Buffer.concat([Buffer.from(`$${BINARY.length}\r\n`), BINARY, Buffer.from('\r\n')])],
  [encodeCommand(['ECHO']), "-ERR wrong number of arguments for 'echo' command\r\n"],
  [encodeCommand(['ECHO', 'a', 'b']), "-ERR wrong number of arguments for 'echo' command\r\n"],
  [encodeCommand(['PING', 'a', 'b']), "-ERR wrong number of arguments for 'ping' command\r\n"],
  [encodeCommand(['PBKDF2', 'secret', 'sockserv', '2000']), bulk(PBKDF2_HEX)],
  ['pbkdf2 secret sockserv 2000\r\n', bulk(PBKDF2_HEX)],
  [encodeCommand(['PBKDF2', 'secret', 'sockserv']), "-ERR wrong number of arguments for 'pbkdf2' command\r\n"],
  [encodeCommand(['PBKDF2', 'p', 's', '0']), '-ERR iterations must be an integer from 1 to 1000000\r\n'],
  [encodeCommand(['PBKDF2', 'p', 's', '1000001']), '-ERR iterations must be an integer from 1 to 1000000\r\n'],
  [encodeCommand(['PBKDF2', 'p', 's', '12x']), '-ERR iterations must be an integer from 1 to 1000000\r\n'],
  [encodeCommand(['COMMAND', 'DOCS']), '*0\r\n'],
  ['COMMAND\r\n', '*0\r\n'],
  [encodeCommand(['xyz', 'a']), "-ERR unknown command 'xyz'\r\n"],
  ['FLUSHALL\r\n', "-ERR unknown command 'FLUSHALL'\r\n"],
  ['*0\r\n\r\n', ''], // no command, no reply
  ['*1\r\n$4\r\nPING\r\n', '+PONG\r\n'], // and the connection is still open
];
const ALL_REQUESTS = Buffer.concat(CASES.map(([request]) => Buffer.from(request as string, 'latin1')));
const ALL_REPLIES = Buffer.concat(CASES.map(([, reply]) => Buffer.from(reply as string, 'latin1')));

describe.each([
  ['TCPServer (inline)', TCPServer],
  ['ThreadingTCPServer (2 workers)', ThreadingTCPServer],
] as const)('RESP example on %s', (_name, Server) => {
  let server: BaseServer;
  let port: number;

  beforeAll(async () => {
    server = new Server({ host: '127.0.0.1', port: 0 }, HANDLER, { framing: 'resp', workers: 2, logger: silentLogger });
    ({ port } = await server.listen());
  });

  afterAll(async () => {
    await server?.close();
  });

  test('raw RESP, every command pipelined in one write', async () => {
    const reply = await exchange(port, [ALL_REQUESTS]);
    expect(reply.toString('latin1')).toBe(ALL_REPLIES.toString('latin1'));
  });

  test('raw RESP, one command at a time on one connection', async () => {
    await oneAtATime(port, CASES.filter(([, reply]) => reply.length > 0));
  });

  test('raw RESP, split at every few bytes with pauses between', async () => {
    const chunks: Buffer[] = [];
    for (let at = 0; at < ALL_REQUESTS.length; at += 7) chunks.push(ALL_REQUESTS.subarray(at, at + 7));
    const reply = await exchange(port, chunks, { gapMs: 1 });
    expect(reply.toString('latin1')).toBe(ALL_REPLIES.toString('latin1'));
  });

  test('500 pipelined PBKDF2 commands come back in order', async () => {
    const passwords = Array.from({ length: 500 }, (_, i) => `password-${i}`);
    const request = Buffer.concat(passwords.map((p) => encodeCommand(['PBKDF2', p, 'salt', '100'])));
    const reply = await exchange(port, [request]);
    expect(reply.toString()).toBe(passwords.map((p) => bulk(hash(p, 'salt', 100))).join(''));
  });

  test('bad input: the commands before it are answered, then the connection closes with ERR_FRAME_INVALID', async () => {
    const reply = (await exchange(port, ['PING\r\n*1\r\n+PING\r\n*1\r\n$4\r\nPING\r\n'], { end: false })).toString();
    expect(reply.startsWith('+PONG\r\n')).toBe(true);
    expect(reply).toContain('ERR_FRAME_INVALID');
    expect(reply.split('PONG')).toHaveLength(2); // nothing after the bad frame was run
  });

  test('a bulk string announced past maxFrameBytes is refused before its body is sent', async () => {
    const reply = (await exchange(port, ['PING\r\n*2\r\n$4\r\nECHO\r\n$2000000\r\n'], { end: false })).toString();
    expect(reply.startsWith('+PONG\r\n')).toBe(true);
    expect(reply).toContain('ERR_FRAME_TOO_LONG');
  });
});
