// The Redis-protocol example as a program: serves ./handler.js with RESP framing on the pool.
//   npm run build && node dist/examples/resp/server.js [port]      (default 6380)
//   redis-cli -p 6380 PING  ·  redis-cli -p 6380 PBKDF2 secret sockserv 2000
//
// RespServer overrides errorReply() so that bad input (and a failing handler, with
// onHandlerError 'reply') is answered with a RESP error a Redis client can read, as Redis says
// "-ERR Protocol error: ..." before closing, instead of the default plain-text `ERROR <code>`.

import { ErrorCodes, type SockservError, ThreadingTCPServer, respError } from 'sockserv';

class RespServer extends ThreadingTCPServer {
  override errorReply(error: SockservError): Uint8Array {
    const protocol = error.code === ErrorCodes.FRAME_INVALID || error.code === ErrorCodes.FRAME_TOO_LONG;
    return respError(protocol ? `ERR Protocol error: ${error.message}` : `ERR ${error.code}`);
  }
}

const port = Number(process.argv[2] ?? 6380);
const server = new RespServer({ host: '127.0.0.1', port }, new URL('./handler.js', import.meta.url), {
  framing: 'resp',
});
const { host, port: bound } = await server.listen();
console.log(`listening on tcp://${host}:${bound}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.close());
}
await server.serveForever();
await server.close();
