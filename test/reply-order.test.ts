// ReplyOrder (src/reply-order.ts), fed directly: outcomes finished in any order are released in
// request order, each exactly once; the ring grows past its first four slots without losing one;
// `full` holds at the limit; errors travel with their place in line; each request's size and
// framing time come back with its outcome.

import fc from 'fast-check';
import { ReplyOrder } from '../src/reply-order.js';
import { ErrorCodes, SockservError } from '../src/errors.js';

function releases() {
  const out: Array<string | null> = [];
  return { out, release: (reply: Buffer | null, error: SockservError | undefined) => out.push(error ? `error ${error.code}` : (reply?.toString() ?? null)) };
}

test('an outcome waits for every earlier one, then everything now in line is released at once', () => {
  const order = new ReplyOrder(8);
  const { out, release } = releases();
  const seqs = [order.begin(0, -1), order.begin(0, -1), order.begin(0, -1)];
  expect(seqs).toEqual([0, 1, 2]);
  expect(order.inFlight).toBe(3);
  order.complete(2, Buffer.from('c'), undefined, release);
  order.complete(1, Buffer.from('b'), undefined, release);
  expect(out).toEqual([]);
  order.complete(0, Buffer.from('a'), undefined, release);
  expect(out).toEqual(['a', 'b', 'c']);
  expect(order.inFlight).toBe(0);
});

test('no reply (null) and errors keep their place in line', () => {
  const order = new ReplyOrder(4);
  const { out, release } = releases();
  for (let i = 0; i < 3; i++) order.begin(0, -1);
  order.complete(1, null, new SockservError(ErrorCodes.HANDLER_FAILED, 'boom'), release);
  order.complete(2, Buffer.from('c'), undefined, release);
  order.complete(0, null, undefined, release);
  expect(out).toEqual([null, 'error ERR_HANDLER_FAILED', 'c']);
});

test('full at the limit; a release makes room again', () => {
  const order = new ReplyOrder(2);
  const { release } = releases();
  order.begin(0, -1);
  expect(order.full).toBe(false);
  order.begin(0, -1);
  expect(order.full).toBe(true);
  order.complete(0, null, undefined, release);
  expect(order.full).toBe(false);
  expect(order.begin(0, -1)).toBe(2);
});

test('any completion order, across growth of the ring and reuse of its slots: released in request order, once each', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 64 }), fc.array(fc.nat(), { minLength: 1, maxLength: 200 }), (limit, choices) => {
      const order = new ReplyOrder(limit);
      const released: number[] = [];
      const release = (reply: Buffer | null, _error: unknown, bytes: number, framedAt: number) => {
        const seq = reply!.readUInt32BE(0);
        expect([bytes, framedAt]).toEqual([seq * 3, seq + 0.5]); // what begin() was given for it
        released.push(seq);
      };
      const open: number[] = [];
      let next = 0;
      // Each choice either starts a request (when not full) or completes one of those open.
      for (const choice of choices) {
        if (!order.full && (open.length === 0 || choice % 2 === 0)) {
          open.push(order.begin(next * 3, next + 0.5));
          next++;
        } else {
          const [seq] = open.splice(choice % open.length, 1);
          const reply = Buffer.alloc(4);
          reply.writeUInt32BE(seq!, 0);
          order.complete(seq!, reply, undefined, release);
        }
        expect(order.inFlight).toBeLessThanOrEqual(limit);
      }
      while (open.length > 0) {
        const seq = open.pop()!;
        const reply = Buffer.alloc(4);
        reply.writeUInt32BE(seq, 0);
        order.complete(seq, reply, undefined, release);
      }
      expect(released).toEqual(Array.from({ length: next }, (_, i) => i));
    }),
  );
});
