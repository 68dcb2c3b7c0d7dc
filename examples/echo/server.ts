// The echo example as a program: the same handler, served from code rather than the CLI.
//   npm run build && node dist/examples/echo/server.js [port]

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
