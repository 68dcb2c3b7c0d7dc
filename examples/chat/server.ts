// The chat example as a program, through the worker pool:
//   npm run build && node dist/examples/chat/server.js [port] [redis://host:port]
// With a Redis URL, every server started the same way shares the room (run two on two ports).

import { ThreadingTCPServer } from 'sockserv';

const port = Number(process.argv[2] ?? 8002);
const pubsub = process.argv[3];
const server = new ThreadingTCPServer({ host: '127.0.0.1', port }, new URL('./handler.js', import.meta.url), { pubsub });
const { host, port: bound } = await server.listen();
console.log(`listening on tcp://${host}:${bound}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.close());
}
await server.serveForever();
await server.close();
