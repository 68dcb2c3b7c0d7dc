// `sockserv serve --processes N` as a user runs it: one `listening on` line for N processes
// behind one port (--port 0 included), requests answered by different processes, SIGTERM to the
// primary answering the requests in flight in every process and exiting 0, a crashed process
// replaced, and a start that cannot succeed failing fast with exit 1.

import { Cli, killAll } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';
import { Registry, WAIT_MS, sleep } from './helpers/net.js';

const registry = new Registry();
const ATTEMPT_MS = 2_000;
afterEach(async () => {
  await registry.cleanup();
  killAll();
});

/** One request on a new connection: the pid of the process that answered it. */
async function servedBy(port: number, timeoutMs?: number): Promise<number> {
  const peer = await registry.peer(port);
  peer.write('who\n');
  const [line] = await peer.untilLines(1, timeoutMs);
  peer.socket.destroy();
  const match = /^(\d+) who$/.exec(line!);
  if (!match) throw new Error(`unexpected reply ${JSON.stringify(line)}`);
  return Number(match[1]);
}

/** Opens connections one after another until `count` different processes have answered (at most 50). */
async function distinctPids(port: number, count: number, exclude: ReadonlySet<number> = new Set()): Promise<Set<number>> {
  const pids = new Set<number>();
  for (let attempt = 0; attempt < 50 && pids.size < count; attempt++) {
    const pid = await servedBy(port);
    if (!exclude.has(pid)) pids.add(pid);
  }
  return pids;
}

/**
 * Sends requests on new connections until a process for which `wanted(pid)` holds answers; a
 * refused or reset connection (no process listening yet) is retried. Fails after WAIT_MS.
 */
async function untilServedBy(port: number, wanted: (pid: number) => boolean, what: string): Promise<number> {
  const deadline = Date.now() + WAIT_MS;
  let last = 'nothing';
  while (Date.now() < deadline) {
    try {
      // A connection that node:cluster accepted while the crashed process was going away can be
      // dropped without an answer: give each attempt a short wait and try a new connection.
      const pid = await servedBy(port, ATTEMPT_MS);
      if (wanted(pid)) return pid;
      last = `pid ${pid}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}; last: ${last}`);
}

describe('sockserv serve --processes', () => {
  test('two processes share one port; SIGTERM answers the requests in flight in both and exits 0', async () => {
    const cli = new Cli(['serve', fixture('process-id'), '--port', '0', '--processes', '2', '--workers', '1']);
    const port = await cli.port();
    const pids = await distinctPids(port, 2);
    expect(pids.size).toBe(2);
    expect(pids.has(cli.child.pid!)).toBe(false);

    // Round-robin spreads consecutive connections over both processes.
    const peers = [];
    for (let i = 0; i < 4; i++) {
      const peer = await registry.peer(port);
      peer.write(`slow c${i}\n`);
      peers.push(peer);
    }
    const started = () => [...cli.stderr.matchAll(/^start c\d (\d+)$/gm)];
    await cli.until(() => started().length === 4, 'all four requests started');
    expect(new Set(started().map((m) => Number(m[1])))).toEqual(pids);

    cli.child.kill('SIGTERM');
    const replies = await Promise.all(peers.map((peer) => peer.untilClosed()));
    replies.forEach((reply, i) => expect(reply.toString()).toMatch(new RegExp(`^\\d+ slow c${i}\\n$`)));
    expect(await cli.exit()).toBe(0);
    expect(cli.stdout).toBe(`listening on tcp://127.0.0.1:${port}\n`);
  });

  test('a process that crashes is replaced, on the same port, with a log line', async () => {
    const cli = new Cli(['serve', fixture('process-id'), '--port', '0', '--processes', '2', '--workers', '1']);
    const port = await cli.port();
    const before = await distinctPids(port, 2);
    expect(before.size).toBe(2);

    const crasher = await registry.peer(port);
    crasher.write('crash\n');
    await crasher.untilClosed();
    await cli.until(() => /worker \d+ exited \(killed by SIGKILL\); restarting it in \d+ ms/.test(cli.stderr), 'the restart log line');
    const crashed = Number(/worker (\d+) exited \(killed by SIGKILL\)/.exec(cli.stderr)![1]);
    expect(before.has(crashed)).toBe(true);

    const replacement = await untilServedBy(port, (pid) => !before.has(pid), 'a new process');
    const after = await distinctPids(port, 2);
    expect(after).toEqual(new Set([...before].filter((pid) => pid !== crashed).concat([replacement])));

    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
    expect(cli.stdout).toBe(`listening on tcp://127.0.0.1:${port}\n`);
  });

  test('with --port 0 and the only process crashed, its replacement listens on the port announced', async () => {
    const cli = new Cli(['serve', fixture('process-id'), '--port', '0', '--processes', '1', '--inline']);
    const port = await cli.port();
    const first = await servedBy(port);
    const crasher = await registry.peer(port);
    crasher.write('crash\n');
    await crasher.untilClosed();
    // Until the replacement listens, connections are refused: nothing holds the port meanwhile.
    const second = await untilServedBy(port, (pid) => pid !== first, 'the replacement');
    expect(second).not.toBe(first);
    expect(cli.stderr).toMatch(/restarting it in \d+ ms/);
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
  });

  test('with --proxy-protocol every process gives handlers the address from the header', async () => {
    const cli = new Cli(['serve', fixture('whoami'), '--port', '0', '--processes', '2', '--inline', '--proxy-protocol']);
    const port = await cli.port();
    const seen = new Set<number>();
    for (let i = 0; i < 50 && seen.size < 2; i++) {
      const peer = await registry.peer(port);
      peer.write(`PROXY TCP4 198.51.100.${i} 127.0.0.1 ${1000 + i} 80\r\nhi\n`);
      const [line] = await peer.untilLines(1);
      peer.socket.destroy();
      const who = JSON.parse(line!) as { pid: number; host: string; port: number };
      expect(who).toMatchObject({ host: `198.51.100.${i}`, port: 1000 + i });
      seen.add(who.pid);
    }
    expect(seen.size).toBe(2);
    cli.child.kill('SIGINT');
    expect(await cli.exit()).toBe(0);
  });

  test('a handler that cannot load stops the start: exit 1, the reason on stderr, nothing on stdout', async () => {
    const cli = new Cli(['serve', fixture('does-not-exist'), '--port', '0', '--processes', '2']);
    expect(await cli.exit()).toBe(1);
    expect(cli.stderr).toContain('ERR_HANDLER_LOAD');
    expect(cli.stderr).toMatch(/failed to start/);
    expect(cli.stdout).toBe('');
  });

  test.each([
    ['--processes 0', ['--processes', '0'], /--processes/],
    ['--processes two', ['--processes', 'two'], /--processes/],
    ['--processes with --udp', ['--processes', '2', '--udp'], /--processes is for TCP/],
    ['--processes with --metrics-port', ['--processes', '2', '--metrics-port', '0'], /--metrics-port/],
    ['--proxy-protocol with --udp', ['--proxy-protocol', '--udp'], /--proxy-protocol/],
  ])('%s exits 2 with a message on stderr', async (_what, flags, message) => {
    const cli = new Cli(['serve', fixture('process-id'), '--port', '0', ...flags]);
    expect(await cli.exit()).toBe(2);
    expect(cli.stderr).toMatch(message);
    expect(cli.stdout).toBe('');
  });
});
