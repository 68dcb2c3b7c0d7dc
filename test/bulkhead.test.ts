// The bulkhead (src/dispatch/scheduler.ts, src/dispatch/suspects.ts): once a request of some kind
// has killed a worker, requests of that kind are suspect — each runs on a channel no other
// connection's request is sent to, preferring an empty one, and they hold at most all open workers
// but one (none while a dead worker's replacement boots beside a single open one). A suspect kind
// that completes a request is trusted again. Before it, one client sending "exit" in a loop killed
// a worker every ~60 ms, faster than a replacement boots, and a probe on another connection
// waited p50 171 ms (33 answers in 5 s); the three killers of the abuse soak together held both
// workers for seconds.

import type { ConnQueue, Entry } from '../src/dispatch/scheduler.js';
import { Scheduler } from '../src/dispatch/scheduler.js';
import { SUSPECT_MS } from '../src/dispatch/suspects.js';
import { type SlotEntry, WorkerChannel } from '../src/dispatch/worker-channel.js';
import { ThreadingTCPServer } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { captureLogger, Registry, waitUntil } from './helpers/net.js';
import { loopOn } from './helpers/channel-loop.js';
// @ts-expect-error a plain JavaScript fixture
import WhoAmI from './fixtures/whoami.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

/** A channel as the scheduler sees it: it records what was sent, and finishes requests when told. */
class FakeChannel {
  phase: 'opening' | 'open' | 'lost' = 'open';
  work = 0;
  heavy = 0;
  suspects = 0;
  runningSince = 0;
  readonly carried: Entry[] = [];
  static #refs = 0;
  constructor(readonly index: number) {}
  get open(): boolean {
    return this.phase === 'open';
  }
  get accepting(): boolean {
    return this.open;
  }
  /** Requests the worker has started (awaiting, for an async handler): outstanding, no longer queued. */
  started = 0;
  get queued(): number {
    return this.carried.length - this.started;
  }
  get used(): number {
    return this.carried.length;
  }
  send(entry: Entry): boolean {
    if (!this.open) return false;
    entry.ref = ++FakeChannel.#refs;
    this.carried.push(entry);
    if (!entry.urgent) {
      this.work += entry.est;
      this.heavy++;
    }
    if (entry.suspect) this.suspects++;
    return true;
  }
  /** The worker answered `entry` (or died with it): its slot is free. */
  release(entry: Entry): void {
    this.carried.splice(this.carried.indexOf(entry), 1);
    if (!entry.urgent) this.work = --this.heavy === 0 ? 0 : this.work - entry.est;
    if (entry.suspect) this.suspects--;
  }
  knowsPeer(): boolean {
    return true;
  }
  introduce(): number {
    return 1;
  }
  waitingEntries(): Entry[] {
    return [];
  }
  revoke(): number {
    return 0;
  }
  commands(): string[] {
    return this.carried.map((e) => e.request.toString());
  }
}

function harness(ordered = true) {
  const scheduler = new Scheduler(ordered, 3);
  // A cheap command, so that channels have room for many (heavy ones are metered by predicted time).
  scheduler.costs.learn(scheduler.costs.keyOf(Buffer.from('who')), 0.01);
  const sinks = new Map<string, { closed: boolean }>();
  const conn = (name: string): ConnQueue => {
    const sink = { closed: false, clientAddress: ['127.0.0.1', name.length], clientId: name };
    sinks.set(name, sink);
    return scheduler.connOf(sink as never);
  };
  let seqs = 0;
  const send = (c: ConnQueue, request: string) => scheduler.enqueue(c, seqs++, Buffer.from(request));
  const serve = (...channels: FakeChannel[]) => scheduler.serve(channels as unknown as Array<WorkerChannel<ConnQueue>>);
  /** Makes `command` a kind that killed a worker at `at` (as the dispatcher does when a worker dies running it). */
  const blame = (command: string, at = Date.now()) => scheduler.blame({ key: scheduler.costs.keyOf(Buffer.from(command)) } as Entry, at);
  /** The worker answered (or died with) `entry`; as the dispatcher's drain does, connections parked on its channel try again. */
  const settle = (channel: FakeChannel, entry: Entry, completed: boolean) => {
    channel.release(entry);
    scheduler.settled(entry, completed);
    scheduler.unpark(channel.index);
  };
  return { scheduler, conn, send, serve, blame, settle, sinks };
}

const suspectsOn = (...channels: FakeChannel[]) => channels.map((c) => c.suspects);

test('Scheduler: a suspect request runs apart, one at a time beside an open worker; none while a replacement boots beside the last one; held back until then', () => {
  const { scheduler, conn, send, serve, blame, settle } = harness();
  blame('exit');
  const [a, b] = [new FakeChannel(0), new FakeChannel(1)];
  const [k1, k2, p, q] = [conn('k1'), conn('k2'), conn('p'), conn('q')];
  send(p, 'who');
  serve(a, b); // P's request goes first, to channel a (both empty, a first)
  expect([a.commands(), b.commands()]).toEqual([['who'], []]);
  send(k1, 'exit');
  send(k2, 'exit');
  serve(a, b);
  send(q, 'who');
  serve(a, b);
  // K1's exit went to the empty channel; K2's is held back (all workers but one); Q's cheap request
  // does not join the channel that holds a suspect, though it holds fewer requests.
  expect([a.commands(), b.commands(), suspectsOn(a, b), scheduler.queued]).toEqual([['who', 'who'], ['exit'], [0, 1], 1]);
  // b's worker dies running it; its replacement boots. a serves alone, with room: K2 still waits.
  const killed = b.carried[0]!;
  b.phase = 'lost';
  settle(b, killed, false);
  scheduler.blame(killed, Date.now());
  const b2 = new FakeChannel(1);
  b2.phase = 'opening';
  serve(a, b2);
  expect([a.commands(), b2.commands(), scheduler.queued]).toEqual([['who', 'who'], [], 1]);
  // The replacement opens: K2's exit goes there (a carries P's and Q's requests).
  b2.phase = 'open';
  serve(a, b2);
  expect([a.commands(), b2.commands(), scheduler.queued]).toEqual([['who', 'who'], ['exit'], 0]);
  // It completes this time (a reply): the kind is trusted again, and the next one is not suspect.
  settle(b2, b2.carried[0]!, true);
  expect(scheduler.suspects.count(Date.now())).toBe(0);
  send(k1, 'exit');
  serve(a, b2);
  expect(b2.carried.map((e) => e.suspect)).toEqual([false]);
});

test('Scheduler: with a single worker, one suspect request may run (none would wait for ever), and the others wait for it, not beside it', () => {
  const { conn, send, serve, blame, settle } = harness();
  blame('exit');
  const only = new FakeChannel(0);
  const [k, p] = [conn('k'), conn('p')];
  send(k, 'exit');
  serve(only);
  send(p, 'who');
  serve(only);
  expect(only.commands()).toEqual(['exit']);
  settle(only, only.carried[0]!, false);
  serve(only);
  expect(only.commands()).toEqual(['who']);
});

test('Scheduler: a suspect avoids a channel with work outstanding when an empty one has room (an async request awaiting there would die with it)', () => {
  const { scheduler, conn, send, serve, blame } = harness();
  blame('hash');
  scheduler.costs.learn(scheduler.costs.keyOf(Buffer.from('sleep')), 0.01); // cheap: b's load stays 0 with it outstanding
  const [a, b] = [new FakeChannel(0), new FakeChannel(1)];
  const [p, k] = [conn('p'), conn('k')];
  send(p, 'sleep 100');
  serve(b, a); // to b (first listed), where it starts and awaits: b has nothing queued, one outstanding
  b.started = 1;
  send(k, 'hash 10');
  serve(b, a);
  expect([a.commands(), b.commands()]).toEqual([['hash 10'], ['sleep 100']]);
});

test('Scheduler: one suspect at a time per connection, and never beside another suspect or another connection\'s request, even when bound', () => {
  const { scheduler, conn, send, serve, blame, settle } = harness();
  scheduler.costs.learn(scheduler.costs.keyOf(Buffer.from('x')), 0.01); // predicted cheap: a run of them would not end at the quantum
  blame('x');
  const channels = [0, 1, 2, 3].map((i) => new FakeChannel(i));
  const [k, m, p] = [conn('k'), conn('m'), conn('p')];
  send(p, 'who');
  serve(...channels); // P on channel 0
  send(k, 'who');
  send(k, 'x');
  send(k, 'x');
  send(m, 'x');
  serve(...channels);
  // K's cheap request went to an empty channel, and its first X after it (bound there, it shares
  // the channel with no one else); M's X went to another empty channel; K's second X waits for its first.
  const held = channels.map((c) => c.commands());
  expect(suspectsOn(...channels).reduce((x, y) => x + y)).toBe(2);
  expect(suspectsOn(...channels).every((n) => n <= 1)).toBe(true);
  expect(held[0]).toEqual(['who']); // P's channel got no suspect
  // K's requests settle one by one: its next X goes only after its first, and never beside P's.
  for (let round = 0; round < 3; round++) {
    for (const channel of channels) for (const entry of [...channel.carried]) if (entry.conn === k) settle(channel, entry, false);
    serve(...channels);
    expect(suspectsOn(...channels).every((n) => n <= 1)).toBe(true);
    expect(channels[0]!.commands()).toEqual(['who']);
  }
  expect(channels.flatMap((c) => c.carried).filter((e) => e.conn === k)).toEqual([]); // all of K's ran
  expect(channels.filter((c) => c.carried.some((e) => e.conn === m)).map((c) => c.commands())).toEqual([['x']]); // M's alone on its channel
});

test('Scheduler: a held-back connection goes on when its kind expires (no other event), and one that closed while held back is dropped then', async () => {
  const { scheduler, conn, send, serve, blame, sinks } = harness();
  const [a, b] = [new FakeChannel(0), new FakeChannel(1)];
  blame('slow', Date.now() - SUSPECT_MS + 150); // expires in 150 ms
  blame('gone');
  const [k1, k2, k3] = [conn('k1'), conn('k2'), conn('k3')];
  send(k1, 'slow');
  send(k2, 'slow');
  send(k3, 'gone');
  serve(a, b);
  expect([a.commands(), b.commands(), scheduler.queued]).toEqual([['slow'], [], 2]); // one place (2 workers): k2 and k3 held back
  expect(scheduler.heldBackUntil).toBeGreaterThan(Date.now());
  sinks.get('k3')!.closed = true;
  // Nothing settles; once 'slow' expires a pass frees K2 (the dispatcher flushes at heldBackUntil).
  const deadline = Date.now() + 3000; // far below the other kind's SUSPECT_MS
  while (b.commands().length === 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    serve(a, b);
  }
  expect([a.commands(), b.commands()]).toEqual([['slow'], ['slow']]);
  expect(b.carried[0]!.suspect).toBe(false);
  expect(scheduler.queued).toBe(0); // K3 closed: its request was dropped, not left counted
});

test('Scheduler: a connection bound to a channel where another connection\'s suspect runs sends nothing more there: it waits for its own requests, then goes elsewhere', () => {
  const { conn, send, serve, blame, settle } = harness();
  const [x, y] = [new FakeChannel(0), new FakeChannel(1)];
  const [e, f, k] = [conn('e'), conn('f'), conn('k')];
  send(e, 'who');
  serve(x, y);
  send(f, 'who');
  serve(x, y);
  expect([x.commands(), y.commands()]).toEqual([['who'], ['who']]); // E on x, F on y: no channel is empty
  blame('exit');
  send(k, 'exit');
  serve(x, y);
  expect(x.commands()).toEqual(['who', 'exit']); // no empty channel: beside E's request
  send(e, 'who');
  send(e, 'who');
  serve(x, y);
  expect([x.commands(), y.commands()]).toEqual([['who', 'exit'], ['who']]); // E waits, bound to x
  settle(x, x.carried[0]!, true); // E's first is answered: E is bound nowhere
  serve(x, y);
  expect([x.commands(), y.commands()]).toEqual([['exit'], ['who', 'who', 'who']]);
});

test('Scheduler: with pipelining parallel too, a connection has one suspect request outstanding at a time', () => {
  const { conn, send, serve, blame, settle } = harness(false);
  blame('exit');
  const channels = [0, 1, 2, 3].map((i) => new FakeChannel(i));
  const k = conn('k');
  for (let i = 0; i < 4; i++) send(k, 'exit');
  serve(...channels);
  expect(suspectsOn(...channels)).toEqual([1, 0, 0, 0]);
  settle(channels[0]!, channels[0]!.carried[0]!, false);
  serve(...channels);
  expect(suspectsOn(...channels).reduce((a, b) => a + b)).toBe(1);
});

test('Scheduler: a suspect sent before a reload clears nothing when it completes after it', () => {
  const { scheduler, conn, send, serve, blame, settle } = harness();
  blame('exit');
  const [a, b] = [new FakeChannel(0), new FakeChannel(1)];
  send(conn('k'), 'exit');
  serve(a, b);
  const old = a.carried[0]!;
  scheduler.suspects.clearAll(); // the reload
  blame('exit'); // the new code kills too
  settle(a, old, true); // the old version's request completes
  expect(scheduler.suspects.count(Date.now())).toBe(1);
});

test('WorkerChannel counts the suspect requests it carries until each slot is freed: answered, taken back, or lost', async () => {
  const channel = new WorkerChannel<null>(0);
  const loop = loopOn(channel, WhoAmI);
  const running = loop.run();
  expect(channel.checkOpen()).toBe(true);
  channel.introduce(1, Buffer.from(JSON.stringify(['10.0.0.1', 1001])));
  const entry = (suspect: boolean): SlotEntry<null> => ({ conn: null, seq: 0, request: Buffer.from('hi'), ref: 0, abandoned: false, key: 0, est: 0, urgent: true, suspect });
  expect(channel.send(entry(true), 1, true)).toBe(true);
  expect(channel.send(entry(false), 1, true)).toBe(true);
  expect(channel.suspects).toBe(1);
  channel.publish();
  let answered = 0;
  await waitUntil(() => {
    answered += channel.drain(() => {});
    return answered === 2;
  }, 'both answers');
  expect(channel.suspects).toBe(0); // answered
  const tail = entry(true);
  channel.send(tail, 1, true);
  expect([channel.suspects, channel.revoke([tail]), channel.suspects]).toEqual([1, 1, 0]); // taken back before the worker saw it
  channel.send(entry(true), 1, true);
  channel.lose();
  channel.takeOutstanding();
  expect(channel.suspects).toBe(0); // lost with its channel
  await running;
});

test('two requests of a kind that killed a worker never hold both workers: a cheap request is answered while the first still runs', async () => {
  const { logger } = captureLogger();
  const server = registry.server(
    new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('adversity'), { workers: 2, logger, requestTimeout: 500, onHandlerError: 'reply' }),
  );
  const { port } = await server.listen();
  // HASH kills a worker once: busy for 5 s, stopped past requestTimeout.
  const first = await registry.peer(port);
  first.write('hash 5000\n');
  expect((await first.untilLines(1))[0]).toBe('ERROR ERR_REQUEST_TIMEOUT');
  expect(server.stats().pool!.suspectKinds).toBe(1);
  // Both workers serve again: the spare took the stopped one's place (two channels with a thread).
  await waitUntil(() => server.stats().pool!.workerTids.length === 2, 'two workers serving');
  // Two more HASH 5000 at once, then a cheap request on a third connection.
  const [a, b, cheap] = await Promise.all([registry.peer(port), registry.peer(port), registry.peer(port)]);
  a.write('hash 5000\n');
  b.write('hash 5000\n');
  await new Promise((resolve) => setImmediate(resolve));
  cheap.write('who\n');
  await cheap.untilLines(1);
  // The cheap reply came while neither suspect request had been stopped yet: one worker was kept free.
  expect({ cheap: cheap.lines[0]!.startsWith('thread '), a: a.lines.length, b: b.lines.length }).toEqual({ cheap: true, a: 0, b: 0 });
  // And the two suspect requests ran one after the other, each stopped past requestTimeout.
  expect([(await a.untilLines(1))[0], (await b.untilLines(1))[0]]).toEqual(['ERROR ERR_REQUEST_TIMEOUT', 'ERROR ERR_REQUEST_TIMEOUT']);
  // A HASH that completes makes the kind trusted again.
  const c = await registry.peer(port);
  c.write('hash 1\n');
  expect((await c.untilLines(1))[0]).toMatch(/^thread /);
  expect(server.stats().pool!.suspectKinds).toBe(0);
}, 30_000);

test('a client sending "exit" again and again kills one worker at a time: a probe on another connection is answered between the deaths', async () => {
  const { logger } = captureLogger();
  const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('adversity'), { workers: 2, logger, onHandlerError: 'reply' }));
  const { port } = await server.listen();
  const killer = await registry.peer(port);
  killer.write('exit\n');
  expect((await killer.untilLines(1))[0]).toBe('ERROR ERR_WORKER_DIED');
  await waitUntil(() => server.stats().pool!.workerTids.length === 2, 'two workers serving');
  // Three exits at once on three connections, then a probe: only one exit may run while the probe waits for a worker.
  const killers = await Promise.all([registry.peer(port), registry.peer(port), registry.peer(port)]);
  const probe = await registry.peer(port);
  for (const k of killers) k.write('exit\n');
  await new Promise((resolve) => setImmediate(resolve));
  probe.write('who\n');
  await probe.untilLines(1);
  const answeredBeforeProbe = killers.filter((k) => k.lines.length > 0).length;
  expect({ probe: probe.lines[0]!.startsWith('thread '), answeredBeforeProbe: answeredBeforeProbe <= 1 }).toEqual({ probe: true, answeredBeforeProbe: true });
  // Every exit still ran, one after another (at most once each: each failed its own request).
  for (const k of killers) expect((await k.untilLines(1))[0]).toBe('ERROR ERR_WORKER_DIED');
}, 30_000);
