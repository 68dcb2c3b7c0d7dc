// Owns a worker's end of its handlers' room calls (join, leave, broadcast, sendTo): each call is a
// ROOM record written through the outcome writer — the worker's one ordered outbound path — so a
// handler's calls reach the main thread in the order it made them, in order with its outcomes and
// its session's bytes; and its promise settles when the main thread's ROOM_ACK for it arrives,
// that is once the call's effect is queued there (for a broadcast: on every local member).
// Record formats: src/rooms/records.ts.
//
// Invariants: each call has its own number (never 0), and its promise settles once — by its
// acknowledgement, or rejected with ERR_SERVER_CLOSED when the channel's loop ends first. Bad
// arguments reject at once, in the handler's own stack, without a trip to the main thread.

import { Kind } from '../src/dispatch/channel-protocol.js';
import { ErrorCodes, SockservError } from '../src/errors.js';
import { type RoomAccess, checkClientId, checkRoom, messageBytes } from '../src/rooms/access.js';
import { type RoomOpCode, RoomOp, decodeRoomError, encodeRoomCall } from '../src/rooms/records.js';
import type { OutcomeWriter } from './outcome-writer.js';

const EMPTY = Buffer.alloc(0);
/** Call numbers wrap here (they ride in the slot word; a number in use after 2^31 − 1 calls is long settled). */
const MAX_CALL = 0x7fffffff;

interface Pending {
  resolve: () => void;
  reject: (error: Error) => void;
}

export class RoomsClient implements RoomAccess {
  readonly #out: OutcomeWriter;
  readonly #pending = new Map<number, Pending>();
  #next = 0;
  #closed = false;

  constructor(out: OutcomeWriter) {
    this.#out = out;
  }

  join(sender: string, room: string): Promise<void> {
    return this.#call(RoomOp.JOIN, sender, () => checkRoom(room), EMPTY);
  }

  leave(sender: string, room: string): Promise<void> {
    return this.#call(RoomOp.LEAVE, sender, () => checkRoom(room), EMPTY);
  }

  broadcast(sender: string, room: string, data: string | Uint8Array, exceptSelf: boolean): Promise<void> {
    return this.#call(exceptSelf ? RoomOp.BROADCAST_EXCEPT_SELF : RoomOp.BROADCAST, sender, () => checkRoom(room), data);
  }

  sendTo(sender: string, clientId: string, data: string | Uint8Array): Promise<void> {
    return this.#call(RoomOp.SEND_TO, sender, () => checkClientId(clientId), data);
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

  #call(op: RoomOpCode, sender: string, target: () => string, data: string | Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(closed());
    let payload: Buffer;
    try {
      payload = encodeRoomCall(sender, target(), messageBytes(data));
    } catch (error) {
      return Promise.reject(error);
    }
    const call = (this.#next = this.#next >= MAX_CALL ? 1 : this.#next + 1);
    const answered = new Promise<void>((resolve, reject) => this.#pending.set(call, { resolve, reject }));
    this.#out.write(Kind.ROOM, call, payload, op);
    this.#out.announce(); // the handler awaits the answer: wake the main thread now, not at the end of the turn
    return answered;
  }
}

function closed(): SockservError {
  return new SockservError(ErrorCodes.SERVER_CLOSED, 'the channel to the main thread closed before this room call was answered');
}
