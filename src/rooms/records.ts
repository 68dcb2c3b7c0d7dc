// Owns the wire form of a handler's room call between a worker and the main thread (the ROOM and
// ROOM_ACK records of src/dispatch/channel-protocol.ts): both sides import this, so they cannot
// drift apart.
//
//   ROOM      worker → main  slot word: the call's number, or 0 when no answer is wanted;
//                            conn word: its RoomOp. payload: u16 sender length, sender (UTF-8),
//                            u16 target length, target (the room, or the client id of SEND_TO),
//                            then the message.
//   ROOM_ACK  main → worker  slot word: the call's number; conn word: 0 done, 1 failed.
//                            payload: nothing, or (failed) { code, message } as JSON.
//
// A call that asked for an answer gets it once its effect is queued on the main thread (for every
// local member). Which calls ask is the worker's choice (workers/rooms-client.ts), from the terms
// the main thread gives it when the channel opens (RoomTerms).

import { ErrorCodes, type ErrorCode, SockservError } from '../errors.js';

/** What a ROOM record asks for (its conn word). */
export const RoomOp = {
  JOIN: 1,
  LEAVE: 2,
  BROADCAST: 3,
  /** A broadcast that skips the sender. */
  BROADCAST_EXCEPT_SELF: 4,
  SEND_TO: 5,
} as const;
export type RoomOpCode = (typeof RoomOp)[keyof typeof RoomOp];

/** What a worker must know to tell which calls only the main thread can decide (given with its channel). */
export interface RoomTerms {
  /** Every call is refused (several processes without pubsub): each asks for its answer. */
  refused: boolean;
  /** A bigger message is refused (ERR_FRAME_TOO_LONG). */
  maxPushBytes: number;
}

/** A decoded ROOM payload. */
export interface RoomCall {
  sender: string;
  /** The room, or (SEND_TO) the client id. */
  target: string;
  /** The message (empty for JOIN and LEAVE): a view of the payload. */
  data: Buffer;
}

/** The payload of a ROOM record. */
export function encodeRoomCall(sender: string, target: string, data: Uint8Array): Buffer {
  const senderBytes = Buffer.byteLength(sender);
  const targetBytes = Buffer.byteLength(target);
  const out = Buffer.allocUnsafe(4 + senderBytes + targetBytes + data.byteLength);
  out.writeUInt16BE(senderBytes, 0);
  out.write(sender, 2, 'utf8');
  out.writeUInt16BE(targetBytes, 2 + senderBytes);
  out.write(target, 4 + senderBytes, 'utf8');
  out.set(data, 4 + senderBytes + targetBytes);
  return out;
}

/** Reads a ROOM payload; `data` is a view of `payload`, which the caller must own. */
export function decodeRoomCall(payload: Buffer): RoomCall {
  const senderBytes = payload.readUInt16BE(0);
  const sender = payload.toString('utf8', 2, 2 + senderBytes);
  const targetAt = 2 + senderBytes;
  const targetBytes = payload.readUInt16BE(targetAt);
  const target = payload.toString('utf8', targetAt + 2, targetAt + 2 + targetBytes);
  return { sender, target, data: payload.subarray(targetAt + 2 + targetBytes) };
}

/** The payload of a failed ROOM_ACK. */
export function encodeRoomError(error: SockservError): Buffer {
  return Buffer.from(JSON.stringify({ code: error.code, message: error.message }));
}

/** The error a failed ROOM_ACK carries (its code kept); never throws on a bad payload. */
export function decodeRoomError(text: string): SockservError {
  try {
    const { code, message } = JSON.parse(text) as { code: ErrorCode; message: string };
    return new SockservError(code, message);
  } catch {
    return new SockservError(ErrorCodes.HANDLER_FAILED, 'a room call failed (its error could not be read)');
  }
}
