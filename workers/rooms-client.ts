// Owns a worker's end of its handlers' room calls (join, leave, broadcast, sendTo): each call is a
// ROOM record written through the outcome writer — the worker's one ordered outbound path — so a
// handler's calls reach the main thread in the order it made them, in order with its outcomes and
// its session's bytes. Record formats: src/rooms/records.ts.
//
// When a call's promise resolves. A join, leave or broadcast resolves as soon as its record is in
// the ring (published, the main thread woken), without a round trip: the main thread reads this
// ring in order and applies each ROOM record as it reads it, so the call takes effect — the
// message is queued for every local member — before anything this thread writes after it: the
// handler's reply, its next call, the session's next bytes, the next request's anything. Whatever
// the sender does next through the server happens after. A record in the ring also survives this
// thread's death (a lost channel is drained first). What a promise cannot skip is an outcome only
// the main thread knows; so a call asks for an answer (ROOM_ACK) and resolves or rejects with it
//   - always for sendTo: the client may be gone (ERR_NO_SUCH_CLIENT), or in another process;
//   - when the main thread will refuse it: every call when rooms are refused (several processes
//     without pubsub: RoomTerms.refused), a datagram's join (no client id), a message past
//     maxPushBytes;
//   - when the ring has no room (records already wait in the outcome writer): then the promise
//     waits until the call is applied — the backpressure on a handler that broadcasts in a loop,
//     so what waits here stays bounded.
// This halves the trips of the common call (measured: the broadcast bench's fan-out ×2 on the
// pool) and keeps the one guarantee a caller can observe: order.
//
// Invariants: each answered call has its own number (never 0: 0 means "no answer"), and its
// promise settles once — by its answer, or rejected with ERR_SERVER_CLOSED when the channel's loop
// ends first. Bad arguments reject at once, in the handler's own stack.

import { Kind } from '../src/dispatch/channel-protocol.js';
import { ErrorCodes, SockservError } from '../src/errors.js';
import { type RoomAccess, checkClientId, checkRoom, messageBytes } from '../src/rooms/access.js';
import { type RoomOpCode, RoomOp, type RoomTerms, decodeRoomError, encodeRoomCall } from '../src/rooms/records.js';
import type { OutcomeWriter } from './outcome-writer.js';

const EMPTY = Buffer.alloc(0);
const RESOLVED = Promise.resolve();
/** Call numbers wrap here (they ride in the slot word; a number in use after 2^31 − 1 calls is long settled). */
const MAX_CALL = 0x7fffffff;

interface Pending {
  resolve: () => void;
  reject: (error: Error) => void;
}

export class RoomsClient implements RoomAccess {
  readonly #out: OutcomeWriter;
  readonly #terms: RoomTerms;
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #closed = false;

  constructor(out: OutcomeWriter, terms: RoomTerms) {
    this.#out = out;
    this.#terms = terms;
  }

  join(sender: string, room: string): Promise<void> {
    return this.#call(RoomOp.JOIN, sender, () => checkRoom(room), EMPTY, sender === '');
  }

  leave(sender: string, room: string): Promise<void> {
    return this.#call(RoomOp.LEAVE, sender, () => checkRoom(room), EMPTY, false);
  }

  broadcast(sender: string, room: string, data: string | Uint8Array, exceptSelf: boolean): Promise<void> {
    return this.#call(exceptSelf ? RoomOp.BROADCAST_EXCEPT_SELF : RoomOp.BROADCAST, sender, () => checkRoom(room), data, false);
  }

  sendTo(sender: string, clientId: string, data: string | Uint8Array): Promise<void> {
    return this.#call(RoomOp.SEND_TO, sender, () => checkClientId(clientId), data, true);
  }

  /** A ROOM_ACK: call `call` is done (`failed` 0), or failed with the error in `error`. */
  settle(call: number, failed: number, error: string): void {
    const pending = this.#pending.get(call);
    if (pending === undefined) return;
    this.#pending.delete(call);
    if (failed === 0) pending.resolve();
    else pending.reject(decodeRoomError(error));
  }

  /** The loop ended: no answer will come. Calls waiting, and later ones, reject with ERR_SERVER_CLOSED. */
  close(): void {
    this.#closed = true;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const { reject } of pending) reject(closed());
  }

  #call(op: RoomOpCode, sender: string, target: () => string, data: string | Uint8Array, mustAnswer: boolean): Promise<void> {
    if (this.#closed) return Promise.reject(closed());
    let payload: Buffer;
    let bytes: Buffer;
    try {
      bytes = messageBytes(data);
      payload = encodeRoomCall(sender, target(), bytes);
    } catch (error) {
      return Promise.reject(error);
    }
    const out = this.#out;
    if (!mustAnswer && !this.#terms.refused && bytes.length <= this.#terms.maxPushBytes && out.writeNow(Kind.ROOM, 0, payload, op)) {
      out.announce(); // published: applied before anything written after it
      return RESOLVED;
    }
    const call = (this.#next = this.#next >= MAX_CALL ? 1 : this.#next + 1);
    const answered = new Promise<void>((resolve, reject) => this.#pending.set(call, { resolve, reject }));
    out.write(Kind.ROOM, call, payload, op);
    out.announce(); // the handler awaits the answer: wake the main thread now, not at the end of the turn
    return answered;
  }
}

function closed(): SockservError {
  return new SockservError(ErrorCodes.SERVER_CLOSED, 'the channel to the main thread closed before this room call was answered');
}
