// server.ts: the same handler from your own program; each pool worker imports handler.ts as it is.
// Run it with `node --import tsx/esm server.ts` (tsx comes with sockserv; not tsx's own CLI, whose
// CommonJS hooks, inherited by the pool's workers, load sockserv twice there). PORT overrides the port.
import { ThreadingTCPServer } from 'sockserv';

const server = new ThreadingTCPServer(
  { host: '127.0.0.1', port: Number(process.env.PORT ?? 8003) },
  new URL('./handler.ts', import.meta.url),
);
const { host, port } = await server.listen();
console.log(`listening on tcp://${host}:${port}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void server.close());
await server.serveForever();
