// Graceful shutdown of the real CLI (`sockserv serve … --workers 2 --shutdown-timeout N`) on
// SIGTERM, with 100 clients pipelining into a ~20 ms async handler.
//
// "Accepted" means fully received by the server before the signal. The handler announces every
// request on stderr as it starts, so the test knows exactly what the server has received: the
// clients pause, the test waits until every request they sent has started, then signals. Every
// one of those requests must be answered, in order, then EOF; the clients go on sending after
// the signal, and none of those late requests may start; new connections are refused; the
// process exits 0 without cutting anything. A handler that never finishes is cut after
// --shutdown-timeout, with ERR_SHUTDOWN_TIMEOUT and the number of requests cut on stderr.

import { Cli, killAll } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';
import { Peer, Registry, sleep, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(async () => {
  await registry.cleanup();
  killAll();
});

const CLIENTS = 100;
/** Requests each client keeps outstanding while it streams. */
const WINDOW = 4;
/** Most requests one client sends before the signal (a bound, not a target). */
const MAX_PER_CLIENT = 2_000;

const startedCount = (stderr: string) => (stderr.match(/^start /gm) ?? []).length;

/** A client keeping WINDOW requests "20 <id>-<n>" outstanding until held. */
class Pipeliner {
  readonly sent: string[] = [];
  replies = 0;
  holding = false;
  constructor(
    readonly peer: Peer,
    readonly id: string,
  ) {
    peer.socket.on('data', (chunk: Buffer) => {
      for (const byte of chunk) if (byte === 0x0a) this.replies++;
      this.refill();
    });
    this.refill();
  }

  refill(): void {
    if (this.holding || this.peer.ended || this.peer.closed) return;
    let batch = '';
    while (this.sent.length - this.replies < WINDOW && this.sent.length < MAX_PER_CLIENT) {
      const request = `20 ${this.id}-${this.sent.length}`;
      this.sent.push(request);
      batch += `${request}\n`;
    }
    if (batch) this.peer.write(batch);
  }
}

/** Connects until the port refuses (bounded); connections that still got in are closed again. */
async function untilRefused(port: number): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    try {
      const peer = await Peer.connect(port, registry);
      peer.socket.destroy();
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ECONNREFUSED') return;
      // A probe that reached the accept queue just as the listener closed is reset by the kernel:
      // the listener is going, so look again until connections are refused outright.
      if (code !== 'ECONNRESET') throw error;
    }
    await sleep(10);
  }
  throw new Error('the port never refused a connection after SIGTERM');
}

test('SIGTERM with 100 clients mid-stream: every request received before the signal is answered, then EOF; later requests are not taken; new connections are refused; exit 0 without cutting', async () => {
  const cli = new Cli(['serve', fixture('announce-sleep'), '--port', '0', '--workers', '2', '--shutdown-timeout', '5000']);
  const { port } = await cli.listening();
  const peers = await Promise.all(Array.from({ length: CLIENTS }, () => registry.peer(port)));
  const clients = peers.map((peer, c) => new Pipeliner(peer, `c${c}`));

  // Let the stream run, then pause the clients until the server has received all they sent.
  await waitUntil(() => clients.every((c) => c.replies >= 5), 'every client has a few replies');
  for (const client of clients) client.holding = true;
  const total = () => clients.reduce((n, c) => n + c.sent.length, 0);
  await cli.until(() => startedCount(cli.stderr) === total(), 'every request sent has started');
  const accepted = clients.map((c) => [...c.sent]);
  expect(startedCount(cli.stderr)).toBe(accepted.flat().length);

  cli.child.kill('SIGTERM');
  await untilRefused(port);
  // The signal has been handled (the listener is closed): the clients go on sending.
  for (const client of clients) client.peer.write(`20 ${client.id}-late-1\n20 ${client.id}-late-2\n`);

  const received = await Promise.all(peers.map((peer) => peer.untilClosed()));
  received.forEach((bytes, c) => {
    expect(bytes.toString()).toBe(accepted[c]!.map((r) => `${r.split(' ')[1]}\n`).join(''));
  });
  for (const peer of peers) expect(peer.ended).toBe(true);

  expect(await cli.exit()).toBe(0);
  expect(cli.stderr).not.toMatch(/-late-/);
  expect(startedCount(cli.stderr)).toBe(accepted.flat().length);
  expect(cli.stderr).not.toContain('ERR_SHUTDOWN_TIMEOUT');
  await expect(Peer.connect(port, registry)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
});

test.each([
  // One per connection: a connection's requests run one after another, so a second pipelined
  // behind a handler that never settles would be received but never start, and the test could
  // not tell it had been received.
  ['an async handler that never settles', 'hang', 2, 1],
  ['a handler stuck in a synchronous loop', 'spin', 1, 1],
])(
  'SIGTERM while %s: after --shutdown-timeout the process exits 0, logging ERR_SHUTDOWN_TIMEOUT and the number of requests cut',
  async (_what, request, connections, perConnection) => {
    const cli = new Cli(['serve', fixture('announce-sleep'), '--port', '0', '--workers', '2', '--shutdown-timeout', '500']);
    const { port } = await cli.listening();
    const peers = await Promise.all(Array.from({ length: connections }, () => registry.peer(port)));
    for (const peer of peers) {
      peer.write('0 warm\n');
      await peer.untilLines(1);
    }
    for (const peer of peers) peer.write(`${request}\n`.repeat(perConnection));
    const stuck = connections * perConnection;
    await cli.until(() => (cli.stderr.match(new RegExp(`^start ${request}$`, 'gm')) ?? []).length === stuck, `${stuck} stuck requests started`);

    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
    const line = cli.stderr.split('\n').find((l) => l.includes('ERR_SHUTDOWN_TIMEOUT'));
    expect(line).toBeDefined();
    expect(line).toMatch(new RegExp(`"?requestsCut"?\\s*[:=]\\s*${stuck}\\b`));
    for (const peer of peers) expect((await peer.untilClosed()).toString()).toBe('warm\n');
  },
);
