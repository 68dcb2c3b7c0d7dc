// server.ts: the same handler from your own program; each pool worker imports handler.ts as it is.
// Run it with `npx tsx server.ts` (after `npm install -D tsx`), or with sockserv's own tsx:
// `node --import sockserv/register server.ts`. PORT overrides the port.
import { ThreadingTCPServer } from 'sockserv';

const server = new ThreadingTCPServer(
  { host: '127.0.0.1', port: Number(process.env.PORT ?? 8003) },
  new URL('./handler.ts', import.meta.url),
);
const { host, port } = await server.listen();
console.log(`listening on tcp://${host}:${port}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void server.close());
await server.serveForever();
