// Owns running one session: a StreamRequestHandler over a MessagePort, from setup() to finish(),
// then the 'end' message that tells the main thread to close the connection. Used by the pool
// worker and, for inline servers, by the main thread itself — the same code either way.
// The handler's room calls go after the writes it made before them (sessionRooms), so a broadcast
// that reaches this connection itself never overtakes what the handler wrote first.

import { type ErrorInfo, toErrorInfo } from '../errors.js';
import { type AnyHandlerClass, type ClientAddress, type ServerInfo, bindRooms } from '../handler.js';
import type { RoomAccess } from '../rooms/access.js';
import { SessionChannel } from './channel.js';
import type { SessionLimits, SessionPort } from './protocol.js';

export async function runSession(
  Handler: AnyHandlerClass,
  port: SessionPort,
  clientAddress: ClientAddress,
  server: ServerInfo,
  limits: SessionLimits,
  rooms: RoomAccess,
  clientId: string,
): Promise<ErrorInfo | null> {
  const channel = new SessionChannel(port, limits);
  let error: ErrorInfo | null = null;
  try {
    bindRooms(sessionRooms(rooms, channel), clientId);
    const handler = new Handler(channel, clientAddress, server);
    await handler.setup();
    try {
      await handler.handle();
    } finally {
      await handler.finish();
    }
  } catch (thrown) {
    error = toErrorInfo(thrown);
  }
  channel.end(error);
  return error;
}

/**
 * A session's rooms: before each call, the writes the handler gathered go out, and the call follows
 * one microtask later — after them on either path (a worker's ring; the in-thread port, which
 * delivers in microtasks).
 */
function sessionRooms(rooms: RoomAccess, channel: SessionChannel): RoomAccess {
  const after = (call: () => Promise<void>): Promise<void> => {
    channel.flushWrites();
    return Promise.resolve().then(call);
  };
  return {
    join: (sender, room) => after(() => rooms.join(sender, room)),
    leave: (sender, room) => after(() => rooms.leave(sender, room)),
    broadcast: (sender, room, data, exceptSelf) => after(() => rooms.broadcast(sender, room, data, exceptSelf)),
    sendTo: (sender, clientId, data) => after(() => rooms.sendTo(sender, clientId, data)),
  };
}
