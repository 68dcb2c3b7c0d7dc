// The Redis-protocol example as a program: serves ./handler.js with RESP framing on the pool.
//   npm run build && node dist/examples/resp/server.js [port]      (default 6380)
//   redis-cli -p 6380 PING  ·  redis-cli -p 6380 PBKDF2 secret sockserv 2000
//
// No errorReply() override is needed: with `framing: 'resp'` a failed request is already answered
// with a RESP error a Redis client can read, `-ERR <code>` (e.g. -ERR ERR_FRAME_INVALID). It names
// the stable code only, never the error's message, so no internals reach clients.

import { ThreadingTCPServer } from 'sockserv';

const port = Number(process.argv[2] ?? 6380);
const server = new ThreadingTCPServer({ host: '127.0.0.1', port }, new URL('./handler.js', import.meta.url), {
  framing: 'resp',
});
const { host, port: bound } = await server.listen();
console.log(`listening on tcp://${host}:${bound}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.close());
}
await server.serveForever();
await server.close();
