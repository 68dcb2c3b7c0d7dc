// server.reload() (src/dispatch/reload.ts) on real sockets and real worker threads: a new version
// of the handler switches in under pipelined load without an error, a dropped connection, a
// reply out of order or a request run twice, and the switch shows in the replies (fixtures
// version-1.js / version-2.js answer "v1 …" / "v2 …" and record every run in shared memory). A
// broken new version changes nothing. Sessions finish on the version they started on, until
// reloadTimeout. An old worker's death, or its watchdog, during the drain fails only what had
// started there. Repeated reloads leave no thread, handle, SharedArrayBuffer or listener behind.

import { createSocket } from 'node:dgram';
import { readFileSync, readdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import {
  type ClientAddress,
  type ServerOptions,
  type SockservError,
  TCPServer,
  ThreadingTCPServer,
  ThreadingUDPServer,
  WorkerPool,
  silentLogger,
} from '../src/index.js';
import { createMetricsRegistry } from '../src/metrics/index.js';
import { DEFAULTS } from '../src/options.js';
import { fixture } from './helpers/client.js';
import { type Peer, Registry, sleep, waitUntil } from './helpers/net.js';

const registry = new Registry();
const dirs: string[] = [];
afterEach(async () => {
  await registry.cleanup();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The fixtures' ledger layout (test/fixtures/version-1.js): runs by id, the flag, the run log. */
const LEDGER_WORDS = 1 << 22;
const FLAG = LEDGER_WORDS >> 2;
/** Request ids per connection in the pipelined reload test: six connections' ids stay below FLAG. */
const ID_STRIDE = 150_000;
const LOG = FLAG + 1;

class ReloadServer extends ThreadingTCPServer {
  readonly failures: SockservError[] = [];
  override handleError(_socket: Socket | null, _client: ClientAddress, error: SockservError): void {
    this.failures.push(error);
  }
}

async function start(handler: string, options: ServerOptions = {}) {
  const ledger = new SharedArrayBuffer(4 * LEDGER_WORDS);
  const server = registry.server(
    new ReloadServer({ host: '127.0.0.1', port: 0 }, fixture(handler), { workers: 2, logger: silentLogger, handlerData: { ledger }, ...options }),
  );
  const { port } = await server.listen();
  const words = new Int32Array(ledger);
  return {
    server,
    port,
    words,
    runs: (id: number) => Atomics.load(words, id),
    /** The run log: +id at a start, -id at an end, in the order they happened. */
    log: () => Array.from(words.subarray(LOG + 1, LOG + 1 + Atomics.load(words, LOG))),
  };
}

/** OS threads of this process (main, libuv, V8 platform, and every worker thread). */
function threads(): number {
  return Number(/^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

/**
 * Null if `got` equals `want` item for item; else where they first differ. A plain loop: jest's deep
 * equality, or an expect per item, over the tens of thousands of requests these tests send took
 * over 2 s of the main thread on a slow hour of the VM — past the loop watchdog's bound.
 */
function firstDifference<T>(got: readonly T[], want: readonly T[]): { at: number; got: T | undefined; want: T | undefined; lengths: [number, number] } | null {
  const length = Math.max(got.length, want.length);
  for (let i = 0; i < length; i++) if (got[i] !== want[i]) return { at: i, got: got[i], want: want[i], lengths: [got.length, want.length] };
  return null;
}

function lines(peer: Peer): string[] {
  return peer.lines;
}

/** A module of its own in a temp directory (it imports the built sockserv by URL). */
function tempModule(name: string, source: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'sockserv-reload-'));
  dirs.push(dir);
  const path = join(dir, name);
  writeFileSync(path, source);
  return path;
}

/** Counts the lines a peer received, as they arrive (cheap to poll under load, unlike Peer.lines). */
class LineCount {
  count = 0;
  readonly #waiters = new Set<() => void>();
  constructor(readonly peer: Peer) {
    peer.socket.on('data', (chunk: Buffer) => {
      for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) this.count++;
      for (const waiter of [...this.#waiters]) waiter();
    });
  }

  /** Resolves once `done()` holds after a line arrived (or now); rejects when the peer closes or after the wait. */
  until(done: () => boolean, what: string): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what} (${this.count} lines)`)), 15_000);
      const check = () => {
        if (done()) finish();
        else if (this.peer.closed) finish(new Error(`the connection closed before ${what}`));
      };
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (error) reject(error);
        else resolve();
      };
      this.#waiters.add(check);
    });
  }
}

describe.each([['serial'], ['parallel']] as const)('pipelining %s: a reload under pipelined load from several connections', (pipelining) => {
  test('0 errors, 0 dropped connections, every reply once and in order, v1 then v2 on each connection', async () => {
    const { server, port, runs, log } = await start('version-1', { pipelining, onHandlerError: 'reply' });
    const CONNECTIONS = 6;
    const WINDOW = 24;
    const peers = await Promise.all(Array.from({ length: CONNECTIONS }, () => registry.peer(port)));
    const counts = peers.map((peer) => new LineCount(peer));
    const sent: number[][] = peers.map(() => []);
    /** Per connection, how many requests it had sent when reload() resolved (-1 before). */
    const sentAtSwitch = peers.map(() => -1);
    // Each connection keeps up to WINDOW requests outstanding, a wave of 6 at a time (one of them
    // an async "sleep 1", so requests are running and awaiting at the switch), until reload()
    // has resolved and 20 of the requests it sent after that are answered.
    const drive = async (c: number): Promise<void> => {
      const count = counts[c]!;
      // Each connection's ids are its own (a stride of ID_STRIDE): ids of two connections that
      // met would read as one request run twice.
      let next = c * ID_STRIDE + 1;
      for (;;) {
        if (next + 6 >= (c + 1) * ID_STRIDE) throw new Error(`connection ${c} ran out of request ids`);
        const wave = Array.from({ length: 6 }, (_, k) => next + k);
        next += wave.length;
        sent[c]!.push(...wave);
        peers[c]!.write(wave.map((id, k) => (k === 2 ? `${id} sleep 1\n` : `${id}\n`)).join(''));
        await count.until(() => sent[c]!.length - count.count <= WINDOW, 'the window to open');
        if (sentAtSwitch[c]! >= 0 && count.count >= sentAtSwitch[c]! + 20) return;
      }
    };
    const driving = Promise.all(peers.map((_, c) => drive(c)));
    await waitUntil(() => counts.every((count) => count.count >= 50), 'load on every connection');
    const { version } = await server.reload(fixture('version-2'));
    sent.forEach((ids, c) => (sentAtSwitch[c] = ids.length));
    expect(version).toBe(2);
    await driving;
    for (const [c, peer] of peers.entries()) {
      await counts[c]!.until(() => counts[c]!.count === sent[c]!.length, `every reply on connection ${c}`);
      const got = lines(peer);
      const switchAt = got.findIndex((l) => l.startsWith('v2 '));
      expect(switchAt).toBeGreaterThan(0); // v1 before the switch, v2 after, nothing else
      expect(switchAt).toBeLessThanOrEqual(sentAtSwitch[c]!); // what was sent after reload() resolved ran on v2
      expect(firstDifference(got, sent[c]!.map((id, i) => `${i < switchAt ? 'v1' : 'v2'} ${id}`))).toBeNull();
      expect(peer.closed).toBe(false);
    }
    const notOnce: Array<[number, number]> = [];
    for (const ids of sent) for (const id of ids) if (runs(id) !== 1 && notOnce.length < 10) notOnce.push([id, runs(id)]);
    expect(notOnce).toEqual([]); // [request id, times it ran] of the first ten that did not run exactly once
    if (pipelining === 'serial') {
      // One connection's requests ran one after another across the switch: its next request
      // started on v2 only after the one before had ended on v1.
      const all = log();
      for (const ids of sent) {
        const mine = new Set(ids);
        expect(firstDifference(all.filter((x) => mine.has(Math.abs(x))), ids.flatMap((id) => [id, -id]))).toBeNull();
      }
    }
    expect(server.failures).toEqual([]);
    expect(server.stats()).toMatchObject({ requestsFailed: 0, connectionsTotal: CONNECTIONS, connections: CONNECTIONS, handlerVersion: 2, reloads: 1, reloadsFailed: 0 });
  });
});

describe('a new version that does not load', () => {
  test('a syntax error, no handler class, a throw at import: the old version keeps serving; reload() rejects naming file:line; the new threads are closed', async () => {
    const { server, port } = await start('version-1', { workers: 1 });
    const peer = await registry.peer(port);
    peer.write('1\n');
    await peer.untilLines(1);
    const baseline = threads();
    const syntax = tempModule('syntax-error.js', `export default class Broken {\n  handle() {\n    return 'x' +;\n  }\n}\n`);
    const cases: Array<[string, string, RegExp]> = [
      [syntax, 'ERR_HANDLER_LOAD', new RegExp(`${syntax.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:\\d+: SyntaxError`)],
      [fixture('broken-import'), 'ERR_HANDLER_LOAD', /broken-import\.js:4:\d+: Error: broken-import: this module fails to load/],
      [fixture('not-a-class'), 'ERR_HANDLER_INVALID', /not-a-class\.js export "default" is not a handler class/],
      [fixture('chat-session'), 'ERR_HANDLER_INVALID', /a reload keeps the handler's kind/],
    ];
    let id = 1;
    for (const [module, code, message] of cases) {
      const error = (await server.reload(module).then(
        () => new Error('reload() resolved'),
        (e: unknown) => e,
      )) as SockservError;
      expect([module, error.code]).toEqual([module, code]);
      expect(error.message).toMatch(message);
      // The connection open before, and a new one, are served by version 1.
      peer.write(`${++id}\n`);
      await peer.until(() => lines(peer).at(-1) === `v1 ${id}`, `v1 ${id} on the old connection`);
      const fresh = await registry.peer(port);
      fresh.write(`${++id}\n`);
      expect(await fresh.untilLines(1)).toEqual([`v1 ${id}`]);
      await waitUntil(() => threads() === baseline, `the new version's threads to stop (${threads()} threads, ${baseline} before)`);
    }
    expect(server.stats()).toMatchObject({ handlerVersion: 1, reloads: 0, reloadsFailed: cases.length, requestsFailed: 0 });
    // And a good version still loads after them.
    expect(await server.reload(fixture('version-2'))).toEqual({ version: 2 });
    peer.write('100\n');
    await peer.until(() => lines(peer).at(-1) === 'v2 100', 'the reply from version 2');
  });
});

describe('sessions (StreamRequestHandler)', () => {
  test('a session that spans a reload finishes its conversation on the old code; new sessions get the new; the old threads stop when it ends', async () => {
    const { server, port } = await start('version-session-1', { workers: 1 });
    const baseline = threads();
    const old = await registry.peer(port);
    old.write('a\n');
    expect(await old.untilLines(2)).toEqual(['v1 hello', 'v1 1:a']);
    expect(await server.reload(fixture('version-session-2'))).toEqual({ version: 2 });
    const fresh = await registry.peer(port);
    fresh.write('x\n');
    old.write('b\nc\n');
    expect(await fresh.untilLines(2)).toEqual(['v2 hello', 'v2 1:x']);
    expect(await old.untilLines(4)).toEqual(['v1 hello', 'v1 1:a', 'v1 2:b', 'v1 3:c']);
    // The old version's worker still carries the old session (its pool keeps its spare thread too).
    expect(threads()).toBe(baseline + 1 + DEFAULTS.spareWorkers);
    old.socket.end();
    expect((await old.untilClosed()).toString()).toBe('v1 hello\nv1 1:a\nv1 2:b\nv1 3:c\nv1 bye 3\n');
    await waitUntil(() => threads() === baseline, `the old version's thread to stop (${threads()} threads, ${baseline} with one version)`);
    fresh.socket.end();
    expect((await fresh.untilClosed()).toString()).toBe('v2 hello\nv2 1:x\nv2 bye 1\n');
    expect(server.failures).toEqual([]);
    expect(server.stats()).toMatchObject({ requestsOk: 2, requestsFailed: 0, handlerVersion: 2 });
  });

  test('a session still open reloadTimeout after the switch gets EOF, as in a shutdown: its last reply arrives, then the close', async () => {
    const { server, port } = await start('version-session-1', { workers: 1, reloadTimeout: 300 });
    const baseline = threads();
    const old = await registry.peer(port);
    old.write('a\n');
    await old.untilLines(2);
    await server.reload(fixture('version-session-2'));
    const switched = Date.now();
    expect((await old.untilClosed()).toString()).toBe('v1 hello\nv1 1:a\nv1 bye 1\n');
    expect(Date.now() - switched).toBeGreaterThanOrEqual(300 - 5); // timers may fire a few ms early on a loaded machine
    expect(old.ended).toBe(true);
    await waitUntil(() => threads() === baseline, 'the old version\'s thread to stop');
    expect(server.failures).toEqual([]);
  });

  test('a session that ignores the EOF is cut shutdownTimeout later (ERR_RELOAD_TIMEOUT), and the old threads stop', async () => {
    const { server, port } = await start('stubborn-session', { workers: 1, reloadTimeout: 100, shutdownTimeout: 300 });
    const baseline = threads();
    const old = await registry.peer(port);
    await old.untilLines(1);
    await server.reload(fixture('version-session-2'));
    const fresh = await registry.peer(port);
    expect(await fresh.untilLines(1)).toEqual(['v2 hello']);
    expect((await old.untilClosed()).toString()).toBe('stubborn\n');
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_RELOAD_TIMEOUT']);
    await waitUntil(() => threads() === baseline, 'the old version\'s thread to stop');
    fresh.write('still\n');
    expect(await fresh.untilLines(2)).toEqual(['v2 hello', 'v2 1:still']);
  });
});

describe('the old version while it drains', () => {
  test('an old worker that dies fails only the request it had started; the ones it had not run once, on the new version', async () => {
    const { server, port, words, runs } = await start('version-1', { workers: 1, onHandlerError: 'reply' });
    const peer = await registry.peer(port);
    // 1 starts on v1 and awaits the flag; 2 and 3 wait behind it in v1's worker (one connection, in order).
    peer.write('1 exit-on-flag\n2\n3\n');
    await waitUntil(() => runs(1) === 1, 'request 1 to start');
    expect(await server.reload(fixture('version-2'))).toEqual({ version: 2 });
    Atomics.store(words, FLAG, 1); // the old worker exits
    expect(await peer.untilLines(3)).toEqual(['ERROR ERR_WORKER_DIED', 'v2 2', 'v2 3']);
    expect([runs(1), runs(2), runs(3)]).toEqual([1, 1, 1]);
    peer.write('4\n');
    expect((await peer.untilLines(4)).at(-1)).toBe('v2 4');
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_WORKER_DIED']);
  });

  test('the watchdog still scans an old version: an async request past requestTimeout fails; the one in flight behind it runs there, the next on the new version; the old threads stop', async () => {
    const { server, port, runs } = await start('version-1', { workers: 1, onHandlerError: 'reply', requestTimeout: 400 });
    const baseline = threads();
    const peer = await registry.peer(port);
    peer.write('1 hang\n2\n');
    await waitUntil(() => runs(1) === 1, 'request 1 to start');
    await server.reload(fixture('version-2'));
    peer.write('3\n'); // waits for 1 and 2 (in flight on v1), then runs on v2
    expect(await peer.untilLines(3)).toEqual(['ERROR ERR_REQUEST_TIMEOUT', 'v1 2', 'v2 3']);
    await waitUntil(() => threads() === baseline, 'the old version\'s thread to stop');
    expect(server.failures.map((f) => f.code)).toEqual(['ERR_REQUEST_TIMEOUT']);
  });
});

describe('what a reload leaves behind', () => {
  // jest runs without --expose-gc; V8 can still hand out gc() to a new context.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const RELOADS = 50;

  /** Active handles by type (MessagePort, Timeout, TCPServerWrap…), descriptors, process listeners. */
  function resources() {
    const handles: Record<string, number> = {};
    for (const type of process.getActiveResourcesInfo()) handles[type] = (handles[type] ?? 0) + 1;
    const listeners = process.eventNames().reduce((sum, name) => sum + process.listenerCount(name), 0);
    return { threads: threads(), fds: readdirSync('/proc/self/fd').length, handles, listeners };
  }

  async function settledMemory(): Promise<{ arrayBuffers: number; heapUsed: number; rss: number }> {
    for (let i = 0; i < 3; i++) {
      await sleep(20);
      gc();
    }
    const { arrayBuffers, heapUsed, rss } = process.memoryUsage();
    return { arrayBuffers, heapUsed, rss };
  }

  test(`${RELOADS} reloads: no thread, descriptor, handle, listener or SharedArrayBuffer left, and RSS stays put`, async () => {
    const { server, port } = await start('version-1', { workers: 1 });
    const peer = await registry.peer(port);
    let id = 0;
    const ask = async (expected: string) => {
      peer.write(`${++id}\n`);
      await peer.until(() => lines(peer).length === id, `reply ${id}`);
      expect(lines(peer).at(-1)).toBe(`${expected} ${id}`);
    };
    // Warm up (a first reload loads what every later one reuses), then take the baseline.
    const oneVersion = threads();
    await server.reload(fixture('version-2'));
    await ask('v2');
    await server.reload(fixture('version-1'));
    await ask('v1');
    await waitUntil(() => threads() === oneVersion, `the warm-up's old threads to stop (${threads()} threads, ${oneVersion} before)`);
    const before = resources();
    const memoryBefore = await settledMemory();
    for (let i = 0; i < RELOADS; i++) {
      const name = i % 2 === 0 ? 'version-2' : 'version-1';
      expect(await server.reload(fixture(name))).toEqual({ version: 4 + i });
      await ask(name === 'version-2' ? 'v2' : 'v1');
    }
    await waitUntil(() => threads() === before.threads, `every old version's thread to stop (${threads()} threads, ${before.threads} before)`);
    await waitUntil(() => resources().fds <= before.fds, 'descriptors back to the baseline');
    const after = resources();
    expect(after.threads).toBe(before.threads);
    expect(after.fds).toBeLessThanOrEqual(before.fds);
    expect(after.listeners).toBe(before.listeners);
    // Timers come and go with the traffic; the handles that would pile up per version are these.
    for (const type of ['MessagePort', 'TCPServerWrap', 'TCPSocketWrap', 'Worker', 'FSEventWrap']) {
      expect([type, after.handles[type] ?? 0]).toEqual([type, before.handles[type] ?? 0]);
    }
    const memoryAfter = await settledMemory();
    // Each version's channel holds ~2.1 MiB of SharedArrayBuffers: 50 kept would be 105 MiB.
    expect(memoryAfter.arrayBuffers - memoryBefore.arrayBuffers).toBeLessThan(4 * 1024 * 1024);
    expect(memoryAfter.heapUsed - memoryBefore.heapUsed).toBeLessThan(4 * 1024 * 1024);
    // RSS is the loose bound: glibc keeps the memory of stopped threads in its per-thread arenas
    // (measured: +60 MiB after 60 reloads of one worker, +130 MiB with two, flat from there to 200
    // reloads); 50 versions' threads kept would be 500 MiB and more, and the thread count above.
    expect(memoryAfter.rss - memoryBefore.rss).toBeLessThan(160 * 1024 * 1024);
    expect(server.stats()).toMatchObject({ reloads: RELOADS + 2, handlerVersion: RELOADS + 3, requestsFailed: 0 });
  }, 120_000);
});

describe('reload() and what cannot reload', () => {
  test('reloads asked together run one after another, in order; stats and the metrics report them', async () => {
    const { server, port } = await start('version-1', { workers: 1 });
    const [a, b] = await Promise.all([server.reload(fixture('version-2')), server.reload()]);
    expect([a, b]).toEqual([{ version: 2 }, { version: 3 }]); // the second, without a module, loads version-2 again
    const peer = await registry.peer(port);
    peer.write('1\n');
    expect(await peer.untilLines(1)).toEqual(['v2 1']);
    await expect(server.reload(fixture('not-a-class'))).rejects.toMatchObject({ code: 'ERR_HANDLER_INVALID' });
    const text = await createMetricsRegistry([server]).metrics();
    const label = `server="tcp://127.0.0.1:${port}"`;
    expect(text).toContain(`sockserv_reloads_total{${label},outcome="ok"} 2`);
    expect(text).toContain(`sockserv_reloads_total{${label},outcome="failed"} 1`);
    expect(text).toContain(`sockserv_handler_info{${label},handler_version="3"} 1`);
  });

  test('a ThreadingUDPServer reloads too: the next datagram is answered by the new version', async () => {
    const server = registry.server(new ThreadingUDPServer({ host: '127.0.0.1', port: 0 }, fixture('version-1'), { workers: 1, logger: silentLogger }));
    const { port } = await server.listen();
    const socket = createSocket('udp4');
    const replies: string[] = [];
    socket.on('message', (message) => replies.push(message.toString()));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    try {
      socket.send('1', port, '127.0.0.1');
      await waitUntil(() => replies.length === 1, 'the first reply');
      expect(await server.reload(fixture('version-2'))).toEqual({ version: 2 });
      socket.send('2', port, '127.0.0.1');
      await waitUntil(() => replies.length === 2, 'the second reply');
      expect(replies).toEqual(['v1 1', 'v2 2']);
    } finally {
      socket.close();
    }
  });

  test('an inline server, a server on a shared pool, one not listening and one closed reject, and go on serving', async () => {
    const inline = registry.server(new TCPServer({ host: '127.0.0.1', port: 0 }, fixture('version-1'), { logger: silentLogger }));
    const { port } = await inline.listen();
    await expect(inline.reload(fixture('version-2'))).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/main thread/) });
    const peer = await registry.peer(port);
    peer.write('1\n');
    expect(await peer.untilLines(1)).toEqual(['v1 1']);
    expect(inline.stats()).toMatchObject({ handlerVersion: 1, reloads: 0, reloadsFailed: 1 });

    const pool = registry.server(new WorkerPool({ workers: 1 }));
    const shared = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('version-1'), { pool, logger: silentLogger }));
    const sharedPort = (await shared.listen()).port;
    await expect(shared.reload(fixture('version-2'))).rejects.toMatchObject({ code: 'ERR_UNSUPPORTED', message: expect.stringMatching(/shared pool/) });
    const other = await registry.peer(sharedPort);
    other.write('2\n');
    expect(await other.untilLines(1)).toEqual(['v1 2']);

    const idle = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('version-1'), { workers: 1, logger: silentLogger }));
    await expect(idle.reload()).rejects.toMatchObject({ code: 'ERR_BAD_OPTION' });
    await idle.listen();
    await idle.close();
    await expect(idle.reload()).rejects.toMatchObject({ code: 'ERR_SERVER_CLOSED' });
  });

  test('close() during a reload: the reload rejects and close leaves no thread', async () => {
    const baseline = threads();
    const { server } = await start('version-1', { workers: 1 });
    const reloading = server.reload(fixture('version-2')).then(
      () => null,
      (e: unknown) => e,
    );
    await server.close();
    expect(await reloading).toMatchObject({ code: 'ERR_SERVER_CLOSED' });
    await waitUntil(() => threads() === baseline, `every thread to stop (${threads()} threads, ${baseline} before)`);
  });
});
