// Regression tests for defects fixed when the dispatch core was split into one file per invariant
// (commit d6d3286). Each states the invariant it holds the code to; the two ends of a channel are
// wired on this thread as in test/worker-channel.test.ts (the worker's loop interleaves with the
// test through the event loop), or a part is tested on its own.
//
//   (a) ABANDON: ordered behind nothing it must not pass, acknowledged only by the ref it names
//   (b) queues free what they consumed (Fifo, the worker's RunQueue, a worker under a backlog)
//   (c) the watchdog stops a worker for a ref, so a reused slot is never taken for the stopped request
//   (d) close() wakes a sleeping worker by its doorbell; no wake is lost
//   (e) a published cheap outcome is announced before a run that is not URGENT

import { performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { MessageChannel, Worker } from 'node:worker_threads';
import {
  CHANNEL_SIZES,
  type ChannelSizes,
  Ctl,
  KIND_MASK,
  Kind,
  SHORT_RUN_MS,
  WAKE_CHECK_MS,
  allocateChannel,
  refOf,
  slotOf,
} from '../src/dispatch/channel-protocol.js';
import { TO_WORKER, ringAlways } from '../src/dispatch/doorbell.js';
import { Fifo } from '../src/dispatch/fifo.js';
import { recover } from '../src/dispatch/recovery.js';
import { RingReader, RingWriter } from '../src/dispatch/ring.js';
import { Watchdog } from '../src/dispatch/watchdog.js';
import { type ReplyKind, type SlotEntry, WorkerChannel } from '../src/dispatch/worker-channel.js';
import type { ClientAddress, ServerInfo } from '../src/handler.js';
import { ChannelLoop } from '../workers/channel-loop.js';
import { OutcomeWriter } from '../workers/outcome-writer.js';
import { NORMAL_WAIT_MS, type Queued, RunQueue } from '../workers/run-queue.js';
// @ts-expect-error a plain JavaScript fixture
import ModelHandler from './fixtures/model-handler.js';
import { prng, waitUntil } from './helpers/net.js';

const SMALL: ChannelSizes = { ringBytes: 4096, slots: 16, maxRecordBytes: 512 };
const SERVER: ServerInfo = { address: { host: '127.0.0.1', port: 0, family: 'IPv4' }, framing: 'line', data: 0 };
const LIMITS = { readHighWaterMark: 65536, maxFrameBytes: 1 << 20 };

interface Deferred {
  resolve(): void;
  reject(value: unknown): void;
}

/** The hooks test/fixtures/model-handler.js calls: every start is recorded (and may act). */
interface Hooks {
  started(token: string, loop: unknown, clientAddress: ClientAddress): string;
  deferred: Map<string, Deferred>;
}

interface Wired {
  channel: WorkerChannel<null>;
  ctl: Int32Array;
  deferred: Map<string, Deferred>;
  /** Tokens in the order their handlers started. */
  starts: string[];
  onStart: ((token: string) => void) | null;
  ended(): boolean;
  /** Closes the channel and waits for the loop to end; the hooks are removed. */
  close(): Promise<void>;
}

const wiredNow: Wired[] = [];

/** A WorkerChannel and a ChannelLoop running test/fixtures/model-handler.js, on this thread. */
function wire(sizes: ChannelSizes = SMALL): Wired {
  const channel = new WorkerChannel<null>(0, sizes);
  const loop = new ChannelLoop(ModelHandler, { server: SERVER, buffers: channel.buffers, port: channel.workerPort, limits: LIMITS, rooms: { refused: false, maxPushBytes: 32 << 20 } });
  let ended = false;
  let failure: unknown;
  const running = loop.run().then(
    () => (ended = true),
    (error: unknown) => {
      ended = true;
      failure = error;
    },
  );
  const wired: Wired = {
    channel,
    ctl: new Int32Array(channel.buffers.control),
    deferred: new Map(),
    starts: [],
    onStart: null,
    ended: () => ended,
    close: async () => {
      if (channel.gone) {
        // Lost (the test played the worker's death): end the loop as a dead worker's would end.
        Atomics.store(wired.ctl, Ctl.CLOSE, 1);
        ringAlways(wired.ctl, TO_WORKER);
      } else channel.close();
      await waitUntil(() => ended, 'the loop ended after close()');
      await running;
      delete (globalThis as { __sockservModel?: Hooks }).__sockservModel;
      if (failure !== undefined) throw failure;
    },
  };
  const hooks: Hooks = {
    started: (token) => {
      wired.starts.push(token);
      wired.onStart?.(token);
      return token;
    },
    deferred: wired.deferred,
  };
  (globalThis as { __sockservModel?: Hooks }).__sockservModel = hooks;
  expect(channel.checkOpen()).toBe(true); // the loop started: the channel takes requests
  wiredNow.push(wired);
  return wired;
}

afterEach(async () => {
  for (const wired of wiredNow.splice(0)) if (!wired.ended()) await wired.close();
  delete (globalThis as { __sockservModel?: Hooks }).__sockservModel;
});

/** A request for test/fixtures/model-handler.js: "<token> <mode> <replyBytes>", padded. */
function entry(token: string, mode: 'sync' | 'async' | 'none', options: { replyBytes?: number; padding?: number; urgent?: boolean; est?: number } = {}): SlotEntry<null> {
  const header = `${token} ${mode} ${options.replyBytes ?? 16} `;
  const request = Buffer.alloc(header.length + (options.padding ?? 0), 'p');
  request.write(header, 'latin1');
  return { conn: null, seq: 0, request, ref: 0, abandoned: false, key: 0, est: options.est ?? 0, urgent: options.urgent ?? false, suspect: false };
}

/** Waits for `condition`, turning the event loop (the loop on this thread runs meanwhile); fails after `ms`. */
async function until(condition: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The reply the fixture sends for `token` (its replyFor): the token, a colon, dots. */
function replyFor(token: string, size = 16): string {
  return `${token}:`.padEnd(size, '.');
}

interface Outcome {
  token: string;
  kind: ReplyKind;
  text: string | null;
}

/** Drains `channel` into `into`, naming each outcome by its request's token. */
function drainInto(channel: WorkerChannel<null>, into: Outcome[]): number {
  return channel.drain((e, kind, bytes) => into.push({ token: e.request.toString('latin1').split(' ')[0]!, kind, text: bytes === null ? null : bytes.toString('latin1') }));
}

// ---- (a) ABANDON ---------------------------------------------------------------------------------

describe('(a) ABANDON', () => {
  // Invariant (record-writer.ts): records reach the worker in the order they were issued; an
  // ABANDON that finds the ring full waits in the backlog, and while it waits no request is
  // written. Before the split the backlog held only ABANDON and session records, and send() wrote
  // a request straight into the ring as soon as the worker had made room — ahead of the ABANDON.
  // The worker's end is a RingReader here, so the test decides exactly when the worker reads.
  test('with the request ring full, an ABANDON waits in the backlog and a request written afterwards reaches the worker after it', () => {
    const channel = new WorkerChannel<null>(0, SMALL);
    const ctl = new Int32Array(channel.buffers.control);
    const states = new Int32Array(channel.buffers.states);
    Atomics.store(ctl, Ctl.OPEN, 1); // what the worker's loop writes when it starts: the channel opens
    expect(channel.checkOpen()).toBe(true);
    const worker = new RingReader(channel.buffers.request, ctl, Ctl.REQ_WRITE, Ctl.REQ_READ);
    const read = (): Array<{ kind: number; ref: number }> => {
      const records: Array<{ kind: number; ref: number }> = [];
      while (worker.next()) records.push({ kind: worker.kind & KIND_MASK, ref: worker.slot });
      worker.release();
      return records;
    };

    const x = entry('x', 'async');
    expect(channel.send(x, 1, true)).toBe(true);
    channel.publish();
    expect(read()).toEqual([{ kind: Kind.REQUEST, ref: x.ref }]);
    Atomics.store(states, slotOf(x.ref), x.ref); // the worker started x; its async handler awaits

    // Fill the ring: ring-sized requests, then 16-byte PEER records until not even one fits.
    let requests = 0;
    while (channel.send(entry(`f${requests}`, 'sync', { padding: 480 }), 2, false)) requests++;
    let peers = 0;
    while (channel.introduce(3 + peers, Buffer.alloc(0)) > 0) peers++;
    expect(requests).toBeGreaterThan(0);
    expect(channel.used).toBeLessThan(SMALL.slots); // the ring filled, not the slots
    channel.publish();

    channel.abandon(x); // the watchdog gives up on x: a 16-byte record, and no room for it
    expect(read()).toHaveLength(requests + peers); // the worker reads everything published: room again, the ABANDON not among it

    const y = entry('y', 'sync');
    const written = channel.send(y, 4, false); // a request written now would overtake the ABANDON
    channel.publish(); // writes the backlog
    if (!written) expect(channel.send(y, 4, false)).toBe(true);
    channel.publish();
    expect(read()).toEqual([
      { kind: Kind.ABANDON, ref: x.ref },
      { kind: Kind.REQUEST, ref: y.ref },
    ]);
    channel.close();
  });

  // Invariant (channel-protocol.ts): a record names a request by its ref — slot and generation —
  // and the worker acknowledges an ABANDON only if that ref still awaits. Before the split an
  // ABANDON named a slot, and the worker acknowledged it against whatever awaited in that slot:
  // a later request reusing it was answered NO_REPLY and its real outcome dropped.
  test('an ABANDON is acknowledged only by the request it names, never by a later request reusing its slot', async () => {
    const { channel, ctl, deferred, close } = wire();
    const outcomes: Outcome[] = [];
    const x = entry('x', 'async');
    expect(channel.send(x, 1, true)).toBe(true);
    channel.publish();
    await waitUntil(() => deferred.has('x'), 'x started');
    deferred.get('x')!.resolve();
    await waitUntil(() => drainInto(channel, outcomes) > 0, 'the outcome of x');
    expect(outcomes).toEqual([{ token: 'x', kind: Kind.REPLY, text: replyFor('x') }]);

    const y = entry('y', 'async');
    expect(channel.send(y, 2, true)).toBe(true);
    channel.publish();
    expect(slotOf(y.ref)).toBe(slotOf(x.ref)); // y reuses x's slot …
    expect(y.ref).not.toBe(x.ref); // … in another generation
    await waitUntil(() => deferred.has('y'), 'y started');

    channel.abandon(x); // a late ABANDON for x: its slot now carries y, which awaits
    channel.publish();
    await waitUntil(
      () => Atomics.load(ctl, Ctl.REQ_READ) === Atomics.load(ctl, Ctl.REQ_WRITE) && Atomics.load(ctl, Ctl.WORKER_SLEEPING) === 1,
      'the worker read the ABANDON and went back to sleep',
    );
    drainInto(channel, outcomes);
    expect(outcomes).toHaveLength(1); // y was not acknowledged in x's place
    expect(channel.used).toBe(1);

    deferred.get('y')!.resolve();
    await waitUntil(() => drainInto(channel, outcomes) > 0, 'the outcome of y');
    expect(outcomes).toEqual([
      { token: 'x', kind: Kind.REPLY, text: replyFor('x') },
      { token: 'y', kind: Kind.REPLY, text: replyFor('y') },
    ]);
    expect(channel.used).toBe(0);
    await close();
  });
});

// ---- (b) queues free what they consumed -----------------------------------------------------------

/**
 * Runs `body` with the global Array constructor replaced by one that records every array it
 * makes: Fifo's backing rings are `new Array(n)`, so their capacity and contents can be inspected
 * — deterministically, with no GC involved (array literals elsewhere are not affected).
 */
function recordingArrays<T>(body: (arrays: unknown[][]) => T): T {
  const RealArray = globalThis.Array;
  const arrays: unknown[][] = [];
  const Recording = new Proxy(RealArray, {
    construct(target, args, newTarget) {
      const array = Reflect.construct(target, args, newTarget === Recording ? target : newTarget) as unknown[];
      arrays.push(array);
      return array;
    },
  });
  globalThis.Array = Recording;
  try {
    return body(arrays);
  } finally {
    globalThis.Array = RealArray;
  }
}

function definedIn(array: unknown[]): number {
  let n = 0;
  for (let i = 0; i < array.length; i++) if (array[i] !== undefined) n++;
  return n;
}

describe('(b) queues free what they consumed', () => {
  // Invariant (fifo.ts): a queue that never empties holds only what it holds. Before the split the
  // pending queue of a connection and the worker's run queue were arrays consumed by a head index:
  // a client that always kept a backlog grew them by one entry per request, the worker's keeping
  // every consumed request (and its buffer) until its queue ran dry.
  test('Fifo: a million push/shift with at most 10 queued keeps a ring of 16, holding only what is queued', () => {
    const random = prng(7);
    const seen = recordingArrays((arrays) => {
      const fifo = new Fifo<{ n: number }>();
      let pushed = 0;
      let shifted = 0;
      let outOfOrder = 0;
      const holding: Array<{ op: number; defined: number; queued: number }> = [];
      for (let op = 0; op < 1_000_000; op++) {
        if (fifo.length === 0 || (fifo.length < 10 && random() < 0.5)) fifo.push({ n: pushed++ });
        else if (fifo.shift()!.n !== shifted++) outOfOrder++;
        if (op % 9973 === 0) holding.push({ op, defined: definedIn(arrays[arrays.length - 1]!), queued: fifo.length }); // the live ring is the last one made
      }
      return { pushed, outOfOrder, holding, capacities: arrays.map((a) => a.length) };
    });
    expect(seen.pushed).toBeGreaterThan(400_000);
    expect(seen.outOfOrder).toBe(0);
    expect(seen.capacities).toEqual([8, 16]); // the first ring, grown once — not once per request
    expect(seen.holding.filter((h) => h.defined !== h.queued)).toEqual([]); // consumed slots are cleared
  });

  test('RunQueue: cheap requests overtake the rest for at most NORMAL_WAIT_MS, never one that arrived before it, and a connection keeps its order', () => {
    const queue = new RunQueue();
    const request = Buffer.alloc(0);
    const peer: ClientAddress = ['', 0];
    let ref = 0;
    const add = (conn: number, urgent: boolean, at: number): Queued => {
      const entry: Queued = { ref: ++ref, conn, request, peer, clientId: '', urgent, short: true, n: 0, at: 0 };
      queue.add(entry, at);
      return entry;
    };
    const older = add(1, true, 0).ref; // cheap, connection 1, before the heavy one
    const heavy = add(2, false, 0).ref; // not cheap, connection 2, at t = 0
    const behind = add(2, true, 0).ref; // connection 2's next: cheap, but queued behind its heavy one (never overtakes it)
    const flood = Array.from({ length: 6 }, () => add(3, true, 0).ref); // cheap, after the heavy one
    // Young (up to just under NORMAL_WAIT_MS): the cheap ones go first, but only those not behind it on their connection.
    expect(queue.next(1)!.ref).toBe(older);
    expect(queue.next(2)!.ref).toBe(flood[0]);
    expect(queue.next(NORMAL_WAIT_MS - 1)!.ref).toBe(flood[1]);
    // Aged: it goes before every cheap request that arrived after it; `behind`, older than the
    // flood and as long queued, follows before them too.
    expect(queue.next(NORMAL_WAIT_MS)!.ref).toBe(heavy);
    expect(queue.next(NORMAL_WAIT_MS)!.ref).toBe(behind);
    expect(queue.next(NORMAL_WAIT_MS)!.ref).toBe(flood[2]);
    // Aged but younger than the oldest cheap one queued: the cheap ones that came first still go first.
    const cheapFirst = add(4, true, 20).ref;
    const heavy2 = add(5, false, 20).ref;
    const rest: number[] = [];
    for (let entry = queue.next(20 + NORMAL_WAIT_MS); entry !== undefined; entry = queue.next(20 + NORMAL_WAIT_MS)) rest.push(entry.ref);
    expect(rest).toEqual([flood[3], flood[4], flood[5], cheapFirst, heavy2]);

    // An aged request of a connection whose async run awaits is held (not run), and the accounts stay exact.
    const running = add(6, true, 100); // connection 6's async run
    expect(queue.next(100)).toBe(running);
    queue.awaiting(running);
    const held = add(6, false, 100).ref; // behind the async run: held when reached
    const later = add(7, true, 100).ref;
    expect(queue.size).toBe(2);
    expect(queue.runnable).toBe(1);
    expect(queue.next(100 + NORMAL_WAIT_MS)!.ref).toBe(later); // the aged one was reached and set aside, the cheap one runs
    expect(queue.next(100 + NORMAL_WAIT_MS)).toBeUndefined();
    expect(queue.size).toBe(0);
    expect(queue.settled(running.ref)).toBe(true);
    expect(queue.next(100 + NORMAL_WAIT_MS)!.ref).toBe(held);
    expect(queue.runnable).toBe(0);
  });

  test('RunQueue: 100 000 requests through it, at most 10 in it (urgent, ordered, held behind async runs), keep its rings at 16', () => {
    // 100 000, not 200 000: under jest's transform one pass costs ~9 µs (~1 µs compiled), and 200 000
    // came within the loop watchdog's 2 s bound on a slow hour of this VM; a ring that grew per
    // request would show within a few hundred.
    const random = prng(11);
    const seen = recordingArrays((arrays) => {
      const queue = new RunQueue();
      const request = Buffer.alloc(0);
      const peer: ClientAddress = ['', 0];
      let ref = 0;
      let inQueue = 0; // added and not yet returned by next(), held ones included
      let ran = 0;
      const awaiting: number[] = [];
      let unsettled = 0;
      while (ran < 100_000) {
        while (inQueue < 10 && random() < 0.6) {
          const conn = random() < 0.5 ? Math.floor(random() * 4) : -1;
          queue.add({ ref: ++ref, conn, request, peer, clientId: "", urgent: random() < 0.3, short: true, n: 0, at: 0 }, 0);
          inQueue++;
        }
        const next = queue.next(0);
        if (next !== undefined) {
          ran++;
          inQueue--;
          if (random() < 0.1) {
            queue.awaiting(next);
            awaiting.push(next.ref);
          }
        }
        if (awaiting.length > 0 && (next === undefined || random() < 0.2)) {
          // Swap-remove, not filter(): with Array replaced by a Proxy, every filter() takes V8's slow
          // species path — it made this test 5× slower, near the loop watchdog's 2 s on a slow machine.
          const at = Math.floor(random() * awaiting.length);
          const settle = awaiting[at]!;
          awaiting[at] = awaiting[awaiting.length - 1]!;
          awaiting.pop();
          if (!queue.settled(settle)) unsettled++;
        }
      }
      return { unsettled, capacities: arrays.map((a) => a.length) };
    });
    expect(seen.unsettled).toBe(0);
    expect(Math.max(...seen.capacities)).toBeLessThanOrEqual(16);
    expect(seen.capacities.length).toBeLessThanOrEqual(6); // three rings, each grown at most once
  });

  // End to end on the worker: a client that always keeps 10 requests queued, 20 000 requests of
  // 2 KiB. The JS heap after a full GC (gc() from a context made after --expose-gc was set at run
  // time) must not grow with the requests served: the worker's queue keeps no consumed request.
  // Measured inside a handler, while the queue has never run dry (the old loop freed its queue only
  // then). A full GC leaves only what is reachable, so the figure is stable: ~0 growth here, about
  // 200 bytes a request (the queued entry and its buffer's view) when consumed ones are kept.
  test('a worker under a constant backlog does not grow its heap per request', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const { channel, close } = wire(CHANNEL_SIZES);
    const TOTAL = 20_000;
    const BACKLOG = 10;
    const heap: number[] = [];
    const outcomes: Outcome[] = [];
    let sent = 0;
    const sendOne = (): void => {
      expect(channel.send(entry(`r${sent}`, 'sync', { padding: 2048 }), 1 + (sent % 4), true)).toBe(true);
      sent++;
    };
    const wired = wiredNow[wiredNow.length - 1]!;
    wired.onStart = (token) => {
      wired.starts.length = 0; // the test keeps nothing per request
      // The client: its replies read, one more request queued for each that starts.
      drainInto(channel, outcomes);
      outcomes.length = 0;
      if (sent < TOTAL) sendOne();
      channel.publish();
      const n = Number(token.slice(1));
      if (n === 2_000 || n === TOTAL - BACKLOG - 1) {
        gc();
        heap.push(process.memoryUsage().heapUsed);
      }
    };
    while (sent < BACKLOG) sendOne();
    channel.publish();
    await waitUntil(() => heap.length === 2, 'the backlog served', 60_000);
    const grownMiB = (heap[1]! - heap[0]!) / 2 ** 20;
    expect(grownMiB).toBeLessThan(1); // ~0 here; ~3.5 MiB (≈ 200 bytes a request) when consumed requests are kept
    await close();
  }, 90_000);
});

// ---- (c) the watchdog names the request by ref ------------------------------------------------------

describe('(c) the watchdog', () => {
  // Invariant (watchdog.ts): a worker is stopped at most once, for a ref. Before the split the
  // watchdog stopped a worker "for slot s": if the overdue request finished before the stop
  // landed and s was reused, recovery took the new request for the one the watchdog stopped —
  // failed it with a timeout it never had instead of retrying it (idempotent) or failing it as died.
  test('stops the worker for the overdue request’s ref; a request reusing its slot is not judged as that one', async () => {
    const LIMIT_MS = 200;
    const { channel, deferred, close } = wire();
    const wired = wiredNow[wiredNow.length - 1]!;
    const outcomes: Outcome[] = [];
    const stops: number[] = [];
    const abandoned: string[] = [];
    const watchdog = new Watchdog<null>(LIMIT_MS, {
      channels: () => [channel],
      drain: () => drainInto(channel, outcomes),
      abandon: (_channel, e) => abandoned.push(e.request.toString('latin1').split(' ')[0]!),
      stop: (stopped) => {
        stops.push(stopped.index);
        return true; // the stop is on its way; the thread goes on until it lands
      },
    });
    // x is stuck: the scan runs while its handler holds the thread (RUNNING names it), long past the limit.
    wired.onStart = (token) => {
      if (token === 'x') watchdog.scan(Date.now() + 10 * LIMIT_MS);
    };
    const x = entry('x', 'sync');
    expect(channel.send(x, 1, true)).toBe(true);
    channel.publish();
    await waitUntil(() => drainInto(channel, outcomes) > 0, 'x finished before its stop landed');
    expect(stops).toEqual([0]);
    expect(channel.killedFor).toBe(x.ref);

    const y = entry('y', 'async');
    expect(channel.send(y, 2, true)).toBe(true);
    channel.publish();
    expect(slotOf(y.ref)).toBe(slotOf(x.ref)); // y reuses x's slot
    await waitUntil(() => deferred.has('y'), 'y started');
    watchdog.scan(Date.now()); // y is not overdue: nothing to do, and the worker is not stopped twice
    expect({ stops, abandoned }).toEqual({ stops: [0], abandoned: [] });

    // The stop lands: the worker is gone with y awaiting.
    channel.lose();
    const lost = channel.takeOutstanding();
    expect(lost.started).toEqual([y]);
    const facts = { died: true, killedFor: channel.killedFor, closed: () => false };
    const idempotent = recover({ started: [...lost.started], queued: [] }, { ...facts, idempotent: true });
    expect(idempotent.fail).toEqual([]);
    expect(idempotent.resend.get(null)).toEqual([y]); // y runs once more, as any request of an idempotent handler on a dead worker
    y.retried = false;
    const once = recover({ started: [...lost.started], queued: [] }, { ...facts, idempotent: false });
    expect(once.fail).toEqual([{ entry: y, cause: 'died' }]); // not 'timeout': the watchdog never stopped anything for y
    await close();
  });
});

// ---- (d) close and the doorbell ------------------------------------------------------------------------

describe('(d) the doorbell', () => {
  // Invariant (doorbell.ts): no wake is lost — a wait that runs out WAKE_CHECK_MS and then finds
  // work counts in MISSED_WAKES. close() sets CLOSE and rings the worker's doorbell, so a worker
  // asleep on it ends at once instead of finding CLOSE when its safety net runs out.
  test('close() while the worker sleeps wakes it by the doorbell: the loop ends, no wake missed', async () => {
    const { channel, ctl, close } = wire();
    const outcomes: Outcome[] = [];
    expect(channel.send(entry('a', 'sync'), 1, true)).toBe(true);
    channel.publish();
    await waitUntil(() => drainInto(channel, outcomes) > 0, 'the reply');
    await waitUntil(() => Atomics.load(ctl, Ctl.WORKER_SLEEPING) === 1, 'the worker asleep on its doorbell');
    const started = performance.now();
    await close();
    expect(channel.wakeCounts.missed).toBe(0);
    expect(channel.phase).toBe('closing');
    expect(performance.now() - started).toBeLessThan(10 * WAKE_CHECK_MS); // a loose bound; the counter above is the assertion
  });

  test('a thousand publishes, the worker asleep before each: every one rings it, none is missed', async () => {
    const { channel, ctl, close } = wire();
    const outcomes: Outcome[] = [];
    const ROUNDS = 1000;
    let woken = 0;
    const arm = (): void => channel.waitForReplies(() => woken++);
    for (let i = 0; i < ROUNDS; i++) {
      await until(() => Atomics.load(ctl, Ctl.WORKER_SLEEPING) === 1, `the worker asleep before request ${i}`);
      arm();
      expect(channel.send(entry(`r${i}`, 'sync'), 1 + (i % 3), true)).toBe(true);
      channel.publish();
      await until(() => woken > i && drainInto(channel, outcomes) > 0, `the reply to request ${i}, announced`);
    }
    expect(outcomes.map((o) => o.token)).toEqual(Array.from({ length: ROUNDS }, (_, i) => `r${i}`));
    const counts = channel.wakeCounts;
    expect({ missed: counts.missed, toWorker: counts.toWorker }).toEqual({ missed: 0, toWorker: ROUNDS }); // every publish found it asleep
    expect(counts.toMain).toBeGreaterThanOrEqual(ROUNDS); // every reply was announced
    await close();
  }, 60_000);

  // The same across two threads, where the handshake can race: the loop runs in a worker thread
  // (test/fixtures/model-loop-worker.js, on the built dist/). Publishes come at random moments
  // around the worker going to sleep — just as it checks its ring, or long after.
  test('two threads: random publishes around the worker’s sleep — none is missed', async () => {
    const channel = new WorkerChannel<null>(0, SMALL);
    const thread = new Worker(new URL('./fixtures/model-loop-worker.js', import.meta.url), {
      workerData: { buffers: channel.buffers, port: channel.workerPort },
      transferList: [channel.workerPort],
    });
    const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
    const errors: unknown[] = [];
    thread.on('error', (error) => errors.push(error));
    try {
      await waitUntil(() => channel.checkOpen(), 'the worker thread opened the channel');
      const random = prng(3);
      const outcomes: Outcome[] = [];
      // The main thread's side of the handshake too: it sleeps on its doorbell until the worker rings.
      const replies = (): Promise<void> => new Promise((resolve) => channel.waitForReplies(resolve));
      const ROUNDS = 2000;
      const deadline = performance.now() + 30_000;
      for (let i = 0; i < ROUNDS; i++) {
        const spin = performance.now() + random() * 0.2; // up to 200 µs: publish as the worker settles, or later
        while (performance.now() < spin);
        expect(channel.send(entry(`r${i}`, 'sync'), 1, true)).toBe(true);
        channel.publish();
        while (outcomes.length <= i) {
          if (performance.now() > deadline) throw new Error(`no reply to request ${i}`);
          if (drainInto(channel, outcomes) === 0) await replies();
        }
      }
      expect(outcomes).toHaveLength(ROUNDS);
      expect(channel.wakeCounts.toWorker).toBeGreaterThan(0); // it did sleep between publishes
      expect(channel.wakeCounts.missed).toBe(0);
      channel.close();
      expect(await exited).toBe(0);
      expect(errors).toEqual([]);
    } finally {
      await thread.terminate();
    }
  }, 60_000);
});

// ---- (e) announcing before a run that is not URGENT ----------------------------------------------------

describe('(e) announcing outcomes', () => {
  // Invariant (outcome-writer.ts): outcomes are published at once but announced (the main
  // thread's doorbell rung) before a run that is not predicted cheap, so a reply never waits behind
  // a slow handler. `unannounced` must count an outcome that was published without a ring — the
  // worker publishes cheap outcomes right after their runs. Before the split the loop rang before
  // a run only if that publish found new records and its smoothed run cost was high: a cheap
  // outcome published right before a slow run waited until that run ended.
  test('OutcomeWriter: an outcome published without a ring is unannounced until announce() rings the sleeping main thread', () => {
    const buffers = allocateChannel(SMALL);
    const ctl = new Int32Array(buffers.control);
    const { port1, port2 } = new MessageChannel();
    const out = new OutcomeWriter(new RingWriter(buffers.reply, ctl, Ctl.REP_WRITE, Ctl.REP_READ), ctl, port2);
    Atomics.store(ctl, Ctl.MAIN_SLEEPING, 1); // the main thread waits on its doorbell
    const bell = Atomics.load(ctl, Ctl.REP_BELL);

    // publish() took the run's end time (d6d3286) and takes nothing since the review changes: called
    // with the time either way.
    const publish: (now: number) => void = out.publish.bind(out);
    out.write(Kind.REPLY, refOf(0, 1), Buffer.from('cheap'), 3);
    expect(out.unannounced).toBe(true); // written, not published
    publish(performance.now()); // a run's outcome: published, the main thread not rung (the loop rings before the next run)
    expect(Atomics.load(ctl, Ctl.REP_WRITE)).toBeGreaterThan(0);
    expect(Atomics.load(ctl, Ctl.REP_BELL)).toBe(bell);
    expect(out.unannounced).toBe(true); // published but unrung: still to announce before a slow run

    out.announce();
    expect(Atomics.load(ctl, Ctl.REP_BELL)).toBe(bell + 1);
    expect(Atomics.load(ctl, Ctl.WAKES_TO_MAIN)).toBe(1);
    expect(out.unannounced).toBe(false);
    port1.close();
    port2.close();
  });

  test('the loop: a cheap (URGENT) request’s outcome is announced before the next request that is not URGENT starts', async () => {
    const { channel, ctl, close } = wire();
    const wired = wiredNow[wiredNow.length - 1]!;
    const seen = new Map<string, { toMain: number; published: number }>();
    wired.onStart = (token) => seen.set(token, { toMain: channel.wakeCounts.toMain, published: Atomics.load(ctl, Ctl.REP_WRITE) });
    let woken = 0;
    channel.waitForReplies(() => woken++); // the main thread sleeps until the worker rings
    expect(Atomics.load(ctl, Ctl.MAIN_SLEEPING)).toBe(1);
    const before = channel.wakeCounts.toMain;
    expect(channel.send(entry('cheap', 'sync', { urgent: true }), 1, true)).toBe(true);
    expect(channel.send(entry('slow', 'sync'), 2, true)).toBe(true);
    channel.publish();
    await waitUntil(() => seen.has('slow'), 'both ran');
    expect(seen.get('cheap')).toEqual({ toMain: before, published: 0 });
    // When "slow" starts, "cheap"'s outcome is published and the sleeping main thread was rung for it.
    expect(seen.get('slow')!.published).toBeGreaterThan(0);
    expect(seen.get('slow')!.toMain).toBe(before + 1);
    await waitUntil(() => woken > 0, 'the main thread woken');
    const outcomes: Outcome[] = [];
    await waitUntil(() => {
      drainInto(channel, outcomes);
      return outcomes.length === 2;
    }, 'both outcomes');
    expect(outcomes.map((o) => o.token)).toEqual(['cheap', 'slow']);
    await close();
  });

  // Wake coalescing (outcome-writer.ts): a saturated worker may hold the wake for heavy outcomes
  // over a SHORT run, while two more wait behind it, for at most HOLD_MS (2 ms).
  test('OutcomeWriter.mayHoldOver: only heavy outcomes, only over a SHORT run, only with two more queued, only for 2 ms', () => {
    const buffers = allocateChannel(SMALL);
    const ctl = new Int32Array(buffers.control);
    const { port1, port2 } = new MessageChannel();
    const out = new OutcomeWriter(new RingWriter(buffers.reply, ctl, Ctl.REP_WRITE, Ctl.REP_READ), ctl, port2);
    expect(out.mayHoldOver(true, 5, 0)).toBe(false); // nothing written: nothing to hold

    out.write(Kind.REPLY, refOf(0, 1), Buffer.from('heavy'), 500);
    out.publishRun(false, 100);
    expect(out.unannounced).toBe(true);
    expect(out.mayHoldOver(true, 2, 100.5)).toBe(true);
    expect(out.mayHoldOver(false, 5, 100.5)).toBe(false); // the next run is not predicted SHORT
    expect(out.mayHoldOver(true, 1, 100.5)).toBe(false); // the main thread must refill before this worker runs dry
    expect(out.mayHoldOver(true, 5, 101.99)).toBe(true);
    expect(out.mayHoldOver(true, 5, 102)).toBe(false); // held 2 ms: no longer

    out.write(Kind.REPLY, refOf(1, 1), Buffer.from('cheap'), 3);
    out.publishRun(true, 101); // a cheap request's outcome joins: nothing is held any more
    expect(out.mayHoldOver(true, 5, 101)).toBe(false);

    out.announce();
    expect(out.unannounced).toBe(false);
    out.write(Kind.REPLY, refOf(2, 1), Buffer.from('heavy'), 500);
    out.publishRun(false, 200); // announce() started afresh: the clock is this outcome's
    expect(out.mayHoldOver(true, 2, 201)).toBe(true);
    port1.close();
    port2.close();
  });

  test('the loop: five SHORT heavy requests queued together wake the sleeping main thread once for the first three outcomes', async () => {
    const { channel, ctl, close } = wire();
    const wired = wiredNow[wiredNow.length - 1]!;
    const seen = new Map<string, { toMain: number; published: number; at: number }>();
    const published = (): number => Atomics.load(ctl, Ctl.REP_WRITE);
    wired.onStart = (token) => seen.set(token, { toMain: channel.wakeCounts.toMain, published: published(), at: performance.now() });
    channel.waitForReplies(() => {}); // the main thread sleeps until the worker rings
    const before = channel.wakeCounts.toMain;
    for (const token of ['h1', 'h2', 'h3', 'h4', 'h5']) expect(channel.send(entry(token, 'sync', { est: SHORT_RUN_MS / 2 }), 1, false)).toBe(true);
    channel.publish();
    await until(() => seen.has('h5'), 'all five ran');
    // h2 and h3 start with h1's (then h2's) outcome published but the wake held: three and two wait
    // behind them. The hold ends after 2 ms: a thread descheduled that long (a loaded machine) has rung.
    const h1 = seen.get('h1')!.at;
    expect(seen.get('h2')!.toMain === before || seen.get('h2')!.at - h1 >= 2).toBe(true);
    expect(seen.get('h3')!.toMain === before || seen.get('h3')!.at - h1 >= 2).toBe(true);
    expect(seen.get('h3')!.published).toBeGreaterThan(seen.get('h2')!.published);
    // h4 has one behind it: the wake goes before it starts (the refill signal), for all three outcomes.
    expect(seen.get('h4')!.toMain).toBe(before + 1);
    const outcomes: Outcome[] = [];
    await until(() => {
      drainInto(channel, outcomes);
      return outcomes.length === 5;
    }, 'every outcome');
    expect(outcomes.map((o) => o.token)).toEqual(['h1', 'h2', 'h3', 'h4', 'h5']);
    await close();
  });

  test('the loop: heavy requests not predicted SHORT are each announced before the next starts', async () => {
    const { channel, ctl, close } = wire();
    const wired = wiredNow[wiredNow.length - 1]!;
    const seen = new Map<string, { toMain: number; published: number }>();
    wired.onStart = (token) => seen.set(token, { toMain: channel.wakeCounts.toMain, published: Atomics.load(ctl, Ctl.REP_WRITE) });
    channel.waitForReplies(() => {});
    const before = channel.wakeCounts.toMain;
    for (const token of ['l1', 'l2', 'l3', 'l4']) expect(channel.send(entry(token, 'sync', { est: SHORT_RUN_MS }), 1, false)).toBe(true);
    channel.publish();
    await until(() => seen.has('l4'), 'all four ran');
    expect(seen.get('l2')).toEqual({ toMain: before + 1, published: expect.any(Number) });
    expect(seen.get('l2')!.published).toBeGreaterThan(0);
    const outcomes: Outcome[] = [];
    await until(() => {
      drainInto(channel, outcomes);
      return outcomes.length === 4;
    }, 'every outcome');
    await close();
  });
});
