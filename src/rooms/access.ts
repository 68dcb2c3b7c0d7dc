// Owns what a handler's room methods (HandlerBase.join, leave, broadcast, sendTo) call: the
// RoomAccess interface, and the checks every implementation applies to its arguments. Three
// implementations: the server's registry itself (inline servers, the inline lane: the main thread
// applies the call at once — ./registry.ts), a worker's client (its calls travel as ROOM records and
// are answered by ROOM_ACK — workers/rooms-client.ts), and NO_ROOMS (a handler made by hand,
// outside any server). Every call names its sender by client id: a handler instance never holds
// more than a string and one shared RoomAccess.
//
// A leaf: it imports only errors.ts, so handler.ts, the registry and the worker may all read it.

import { ErrorCodes, SockservError, badOption } from '../errors.js';

/** What a handler's room methods call; `sender` is the handler's clientId ('' for a datagram). */
export interface RoomAccess {
  join(sender: string, room: string): Promise<void>;
  leave(sender: string, room: string): Promise<void>;
  broadcast(sender: string, room: string, data: string | Uint8Array, exceptSelf: boolean): Promise<void>;
  sendTo(sender: string, clientId: string, data: string | Uint8Array): Promise<void>;
}

/** Longest room name, in UTF-8 bytes. */
const MAX_ROOM_BYTES = 1024;

/** `room` as a room name, or throws ERR_BAD_OPTION: a non-empty string of at most MAX_ROOM_BYTES. */
export function checkRoom(room: unknown): string {
  if (typeof room !== 'string' || room.length === 0 || Buffer.byteLength(room) > MAX_ROOM_BYTES) {
    throw badOption(`a room is a non-empty string of at most ${MAX_ROOM_BYTES} bytes (got ${describe(room)})`);
  }
  return room;
}

/** `clientId` as a client id, or throws ERR_BAD_OPTION. */
export function checkClientId(clientId: unknown): string {
  if (typeof clientId !== 'string' || Buffer.byteLength(clientId) > MAX_ROOM_BYTES) {
    throw badOption(`a client id is a string, as this.clientId gives it (got ${describe(clientId)})`);
  }
  return clientId;
}

/** A message's bytes (text as UTF-8), or throws ERR_BAD_OPTION. */
export function messageBytes(data: unknown): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw badOption(`a message is a string or a Uint8Array (got ${describe(data)})`);
}

/** The error sendTo rejects with when `clientId` is gone (or never was). */
export function noSuchClient(clientId: string): SockservError {
  return new SockservError(ErrorCodes.NO_SUCH_CLIENT, `no connection has the client id ${JSON.stringify(clientId)} (it closed, or never was)`);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  return value === null ? 'null' : typeof value;
}

function unavailable(): Promise<never> {
  return Promise.reject(
    new SockservError(ErrorCodes.UNSUPPORTED, 'rooms are for handlers a server runs: this handler was constructed outside a server'),
  );
}

/** The rooms of a handler constructed by hand (a unit test, say): every call rejects ERR_UNSUPPORTED. */
export const NO_ROOMS: RoomAccess = Object.freeze({
  join: unavailable,
  leave: unavailable,
  broadcast: unavailable,
  sendTo: unavailable,
});
