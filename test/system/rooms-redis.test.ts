// Rooms across processes (issue 20): `sockserv serve --processes 2 --pubsub redis://…` against a
// real redis-server (Debian's redis-server) on 127.0.0.1 and a random port. The two processes
// share one port (node:cluster hands connections out round-robin), so clients land on both; every
// member must get every sender's messages once and in order, and sendTo must cross processes.
// Then the same with two separate servers in this process (two "machines"), and Redis going away
// and coming back. Part of `npm run test:system`: a missing redis-server fails it, naming the package.

import { type ChildProcess, spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { ErrorCodes, TCPServer, ThreadingTCPServer } from '../../src/index.js';
import { Cli, killAll } from '../helpers/cli-process.js';
import { fixture } from '../helpers/client.js';
import { type Peer, Registry, captureLogger, waitUntil } from '../helpers/net.js';
import { TOOLS, requireTools } from './tools.js';

const registry = new Registry();
let redis: { child: ChildProcess; port: number; url: string } | undefined;

afterEach(async () => {
  killAll();
  await registry.cleanup();
  stopRedis();
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A throwaway redis-server on 127.0.0.1 (no persistence); resolves once it accepts connections. */
async function startRedis(port?: number): Promise<{ port: number; url: string }> {
  requireTools(TOOLS.redisServer);
  port ??= await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (output += text));
  redis = { child, port, url: `redis://127.0.0.1:${port}` };
  await waitUntil(() => output.includes('Ready to accept connections') || child.exitCode !== null, 'redis-server to start');
  if (child.exitCode !== null) throw new Error(`redis-server exited ${child.exitCode}: ${output}`);
  return redis;
}

function stopRedis(): void {
  if (redis !== undefined && redis.child.exitCode === null) redis.child.kill('SIGKILL');
  redis = undefined;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

async function ask(peer: Peer, line: string): Promise<string> {
  const before = peer.lines.length;
  peer.write(`${line}\n`);
  return (await peer.untilLines(before + 1))[before]!;
}

test('redis-server is installed (Debian redis-server)', () => {
  requireTools(TOOLS.redisServer);
});

test('serve --processes 2 --pubsub: members on both processes get every sender\'s messages once, in order; sendTo crosses processes', async () => {
  const { url } = await startRedis();
  const cli = new Cli(['serve', fixture('rooms'), '--port', '0', '--processes', '2', '--workers', '1', '--pubsub', url]);
  const port = await cli.port();
  const CLIENTS = 6;
  const MESSAGES = 100;
  const peers = await Promise.all(range(CLIENTS).map(() => registry.peer(port)));
  const pids: string[] = [];
  const ids: string[] = [];
  for (const peer of peers) {
    pids.push(await ask(peer, 'pid'));
    ids.push(await ask(peer, 'id'));
    expect(await ask(peer, 'join r')).toBe('joined r');
  }
  expect(new Set(pids).size).toBe(2); // round-robin: clients on both processes
  expect(new Set(ids).size).toBe(CLIENTS);
  // Every process must have its members before the first message leaves (the join is answered
  // once applied where the client is; the broadcasts travel through Redis).
  peers.forEach((peer, c) => peer.write(range(MESSAGES).map((i) => `say r m ${c} ${i}\n`).join('')));
  for (const peer of peers) {
    const lines = await peer.untilLines(3 + CLIENTS * MESSAGES);
    const next = range(CLIENTS).map(() => 0);
    for (const line of lines.slice(3)) {
      const [m, c, i] = line.split(' ');
      expect(m).toBe('m');
      expect(Number(i)).toBe(next[Number(c)]);
      next[Number(c)]!++;
    }
    expect(next).toEqual(range(CLIENTS).map(() => MESSAGES));
  }

  // sendTo a client of the other process, then to one that is gone, then to a process that never was.
  const a = peers[0]!;
  const other = pids.findIndex((pid) => pid !== pids[0]);
  const b = peers[other]!;
  const seen = b.lines.length;
  expect(await ask(a, `to ${ids[other]} across`)).toBe('sent');
  await b.untilLines(seen + 1);
  expect(b.lines[seen]).toBe('across');
  b.socket.destroy();
  await waitUntil(() => b.closed, 'b closed');
  // b's process learns of the close a moment later; until then a sendTo may still find b. Ask
  // again until it does not (each answer is a round trip through Redis: no sleep needed).
  const deadline = Date.now() + 10_000;
  let answer = await ask(a, `to ${ids[other]} anyone?`);
  while (answer === 'sent' && Date.now() < deadline) answer = await ask(a, `to ${ids[other]} anyone?`);
  expect(answer).toBe('ERROR ERR_NO_SUCH_CLIENT');
  expect(await ask(a, 'to nosuchnode.1 x')).toBe('ERROR ERR_NO_SUCH_CLIENT');

  cli.child.kill('SIGTERM');
  expect(await cli.exit()).toBe(0);
});

test('two servers (two machines) share rooms through Redis; Redis going away and back is logged and survived', async () => {
  const { port: redisPort, url } = await startRedis();
  const logs = [captureLogger(), captureLogger()];
  const one = registry.server(new ThreadingTCPServer({ port: 0 }, fixture('rooms'), { workers: 1, pubsub: url, logger: logs[0]!.logger }));
  const two = registry.server(new TCPServer({ port: 0 }, fixture('rooms'), { pubsub: { url, prefix: 'sockserv-test' }, logger: logs[1]!.logger }));
  const three = registry.server(new TCPServer({ port: 0 }, fixture('rooms'), { pubsub: url, logger: logs[1]!.logger }));
  const [p1, p2, p3] = [(await one.listen()).port, (await two.listen()).port, (await three.listen()).port];
  const a = await registry.peer(p1);
  const b = await registry.peer(p2); // another prefix: not in the same rooms
  const c = await registry.peer(p3);
  for (const peer of [a, b, c]) expect(await ask(peer, 'join r')).toBe('joined r');
  a.write('say r hello\n');
  await c.untilLines(2);
  expect(c.lines).toEqual(['joined r', 'hello']);
  await one.broadcast('r', 'from the server');
  await c.untilLines(3);
  expect(c.lines[2]).toBe('from the server');
  expect(b.lines).toEqual(['joined r']);

  stopRedis();
  await waitUntil(() => logs[0]!.entries.some((e) => e.message?.includes('lost the connection to Redis')), 'the loss is logged');
  a.write('say r while away\n'); // dropped for the other process, delivered here
  await a.untilLines(4);
  expect(a.lines.slice(1)).toEqual(['hello', 'from the server', 'while away']);
  await startRedis(redisPort);
  await waitUntil(() => logs[0]!.entries.some((e) => e.message?.includes('reconnected to Redis')), 'the recovery is logged', 20_000);
  await waitUntil(() => logs[1]!.entries.filter((e) => e.message?.includes('reconnected to Redis')).length >= 2, 'the others recover', 20_000);
  a.write('say r back\n');
  await c.untilLines(4);
  expect(c.lines.slice(3)).toEqual(['back']);
  await waitUntil(() => logs[0]!.entries.some((e) => e.context.code === ErrorCodes.PUBSUB_UNAVAILABLE && e.message?.includes('dropped') === true), 'the dropped broadcast is logged');
});

test('a server whose Redis cannot be reached does not start (ERR_PUBSUB_UNAVAILABLE)', async () => {
  const port = await freePort();
  const server = registry.server(new TCPServer({ port: 0 }, fixture('rooms'), { pubsub: `redis://127.0.0.1:${port}`, logger: captureLogger().logger }));
  await expect(server.listen()).rejects.toMatchObject({ code: ErrorCodes.PUBSUB_UNAVAILABLE });
  expect(server.addresses).toEqual([]);
});
