// Review finding: a ref whose generation has bit 18 set (ref >= 2^31) is written by the worker
// into `states` (an Int32Array) and read back by the main thread as a negative number, which never
// equals entry.ref (an unsigned number, refOf ends in `>>> 0`). From then on the main thread
// believes a running request never started: requestTimeout skips it, and a death re-sends it (it
// runs twice). The free list is LIFO, so with one request at a time every request takes slot 0:
// 2^18 = 262,144 requests over one channel reach that generation.
//
// Both ends are wired on this thread (as test/worker-channel.test.ts does). A fake worker answers
// the first requests with NO_REPLY to advance slot 0's generation fast; then the real ChannelLoop
// starts an async request that never settles, and we ask what the main thread thinks of it.

import { Ctl, Kind, SLOT_BITS } from '../src/dispatch/channel-protocol.js';
import { RingReader, RingWriter } from '../src/dispatch/ring.js';
import { type SlotEntry, WorkerChannel } from '../src/dispatch/worker-channel.js';
import { BaseRequestHandler } from '../src/index.js';
import { loopOn } from './helpers/channel-loop.js';
import { waitUntil } from './helpers/net.js';

class Hang extends BaseRequestHandler {
  override handle(): Promise<string> {
    return new Promise(() => {}); // awaits for ever (the watchdog's "async, overdue" case)
  }
}

const noop = () => {};
const entry = (seq: number): SlotEntry<null> => ({ conn: null, seq, request: Buffer.from('x'), ref: 0, abandoned: false, key: 0, est: 0, urgent: true, suspect: false });

/** Opens a one-slot channel, runs `before` requests through a fake worker, then starts a hanging one on the real loop. */
async function hangingRequestAfter(before: number) {
  const channel = new WorkerChannel<null>(0, { ringBytes: 1 << 16, slots: 1, maxRecordBytes: 4096 });
  const ctl = new Int32Array(channel.buffers.control);
  Atomics.store(ctl, Ctl.OPEN, 1);
  expect(channel.checkOpen()).toBe(true);
  const requests = new RingReader(channel.buffers.request, ctl, Ctl.REQ_WRITE, Ctl.REQ_READ);
  const replies = new RingWriter(channel.buffers.reply, ctl, Ctl.REP_WRITE, Ctl.REP_READ);
  for (let i = 0; i < before; i++) {
    // Plain checks: a million expect() calls would take minutes.
    if (!channel.send(entry(i), 1, true)) throw new Error(`send ${i}`);
    channel.publish();
    if (!requests.next()) throw new Error(`read ${i}`);
    const ref = requests.slot;
    requests.release();
    if (!replies.write(Kind.NO_REPLY, ref, 0, null)) throw new Error(`reply ${i}`);
    replies.publish();
    if (channel.drain(noop) !== 1) throw new Error(`drain ${i}`);
  }
  // Now the real worker loop (it starts at the ring positions the fake one left).
  const loop = loopOn(channel, Hang);
  const running = loop.run();
  const hanging = entry(before);
  expect(channel.send(hanging, 1, true)).toBe(true);
  channel.publish();
  await waitUntil(() => Atomics.load(ctl, Ctl.SYNC_DONE) === 1, 'the worker ran the hanging request'); // the real loop counts from 0
  // The watchdog's view a minute later, and recovery's view after a death.
  const overdue = channel.overdue(Date.now() + 60_000, 1000);
  const ref = hanging.ref;
  const lost = channel.takeOutstanding();
  channel.close();
  await running;
  return { ref, overdue, lost };
}

test('control: at generation 1 the main thread sees the started request (overdue → abandon; death → fail, not re-run)', async () => {
  const { ref, overdue, lost } = await hangingRequestAfter(0);
  expect(ref).toBe(1 << SLOT_BITS);
  expect(overdue.awaiting.map((e) => e.ref)).toEqual([ref]);
  expect(lost.started).toHaveLength(1);
  expect(lost.queued).toHaveLength(0);
});

test('after 2^18 generations of a slot its ref stays a positive int32: the started request is still seen started (timed out; failed, not re-run, after a death)', async () => {
  const { ref, overdue, lost } = await hangingRequestAfter(2 ** 18 - 1);
  // Generations wrap below 2^18 so a ref never reaches 2^31 (it was negative in the Int32Array words).
  expect(ref).toBeGreaterThan(0);
  expect(ref).toBeLessThan(2 ** 31);
  // Before the fix: awaiting [] (requestTimeout never fired for it), started 0 and queued 1
  // (recovery re-sent a request that ran: at most once broken).
  expect({ awaiting: overdue.awaiting.map((e) => e.ref), started: lost.started.length, queued: lost.queued.length }).toEqual({
    awaiting: [ref],
    started: 1,
    queued: 0,
  });
}, 60_000);
