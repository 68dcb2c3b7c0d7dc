// Owns running one request through a handler class: construct, setup, handle, finish, and
// collect the reply bytes. Shared by the inline dispatcher (main thread) and the pool worker, so
// both run handlers identically. Stays synchronous when the handler is synchronous: no promise
// is created per request unless a handler method returns one.

import { type ClientAddress, type HandlerClass, type HandlerResult, type ServerInfo, kReplyChunks } from './handler.js';

/** The reply bytes, or null when the handler wrote nothing (then nothing is sent). */
export type Reply = Buffer | null;

export function runHandler(
  Handler: HandlerClass,
  request: Buffer,
  clientAddress: ClientAddress,
  server: ServerInfo,
): Reply | Promise<Reply> {
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
  let chunks = handler[kReplyChunks];
  if (typeof result === 'string' || result instanceof Uint8Array) (chunks ??= []).push(result);
  if (chunks === null) return null;
  if (chunks.length === 1) return toBuffer(chunks[0]!);
  return Buffer.concat(chunks.map(toBuffer));
}

function toBuffer(chunk: string | Uint8Array): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk);
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

export function isThenable<T>(value: unknown): value is Promise<T> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}
