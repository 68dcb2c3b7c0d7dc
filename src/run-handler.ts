// Owns running one request through a handler class: construct, setup, handle, finish, and
// collect the reply bytes. Shared by the inline dispatcher (main thread) and the pool worker, so
// both run handlers identically. Stays synchronous when the handler is synchronous: no promise
// is created per request unless a handler method returns one. The handler's rooms (`rooms`, and
// the connection's `clientId`) are bound to it as it is constructed.

import { type ClientAddress, type HandlerClass, type HandlerResult, type ServerInfo, bindRooms, kReplyChunks } from './handler.js';
import { type Reply, replyBytes } from './reply.js';
import type { RoomAccess } from './rooms/access.js';

export function runHandler(
  Handler: HandlerClass,
  request: Buffer,
  clientAddress: ClientAddress,
  server: ServerInfo,
  rooms: RoomAccess,
  clientId: string,
): Reply | Promise<Reply> {
  bindRooms(rooms, clientId);
  const handler = new Handler(request, clientAddress, server);
  const setupDone = handler.setup();
  if (isThenable(setupDone)) return finishAsync(handler, setupDone, undefined);
  let result: HandlerResult | Promise<HandlerResult>;
  try {
    result = handler.handle();
  } catch (error) {
    const finished = handler.finish();
    if (isThenable(finished)) return finished.then(() => Promise.reject(error));
    throw error;
  }
  if (isThenable(result)) return finishAsync(handler, undefined, result);
  const finished = handler.finish();
  if (isThenable(finished)) return finished.then(() => collectReply(handler, result));
  return collectReply(handler, result);
}

async function finishAsync(
  handler: InstanceType<HandlerClass>,
  setupDone: Promise<void> | undefined,
  pendingResult: Promise<HandlerResult> | undefined,
): Promise<Reply> {
  let result: HandlerResult;
  if (setupDone) {
    await setupDone;
    try {
      result = await handler.handle();
    } finally {
      await handler.finish();
    }
  } else {
    try {
      result = await pendingResult;
    } finally {
      await handler.finish();
    }
  }
  return collectReply(handler, result);
}

function collectReply(handler: InstanceType<HandlerClass>, result: HandlerResult): Reply {
  const chunks = handler[kReplyChunks];
  const returned = typeof result === 'string' || result instanceof Uint8Array;
  // The common case: no array (undefined for a class with handler methods of its own, not extending BaseRequestHandler).
  if (chunks == null) return returned ? replyBytes(result) : null;
  if (returned) chunks.push(result);
  if (chunks.length === 1) return replyBytes(chunks[0]!);
  return Buffer.concat(chunks.map(replyBytes));
}

export function isThenable<T>(value: unknown): value is Promise<T> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
