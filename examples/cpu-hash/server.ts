// The CPU-heavy example as a program: hashes each line on the worker pool.
//   npm run build && node dist/examples/cpu-hash/server.js [port]

import { ThreadingTCPServer } from 'sockserv';

const port = Number(process.argv[2] ?? 8001);
const server = new ThreadingTCPServer({ host: '127.0.0.1', port }, new URL('./handler.js', import.meta.url), {
  framing: 'line',
});
const { host, port: bound } = await server.listen();
console.log(`listening on tcp://${host}:${bound}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.close());
}
await server.serveForever();
await server.close();
