// Owns running one session: a StreamRequestHandler over a MessagePort, from setup() to finish(),
// then the 'end' message that tells the main thread to close the connection. Used by the pool
// worker and, for inline servers, by the main thread itself — the same code either way.

import { type ErrorInfo, toErrorInfo } from '../errors.js';
import type { AnyHandlerClass, ClientAddress, ServerInfo } from '../handler.js';
import { SessionChannel } from './channel.js';
import type { SessionLimits, SessionPort } from './protocol.js';

export async function runSession(
  Handler: AnyHandlerClass,
  port: SessionPort,
  clientAddress: ClientAddress,
  server: ServerInfo,
  limits: SessionLimits,
): Promise<ErrorInfo | null> {
  const channel = new SessionChannel(port, limits);
  let error: ErrorInfo | null = null;
  try {
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
