// The classic blocking server and its select() rewrite, as one sockserv program: one process
// watches 127.0.0.1:8001 and 127.0.0.1:8002 at once (the select loop's read set is Node's event
// loop), and each conversation runs as a session on the worker pool (the blocking recv() loop,
// one per connection, as ThreadingMixIn gives a thread per connection). Pass --inline to run the
// sessions on the main thread instead — the single-threaded select() version.
//
//   npm run example:seed            then: nc 127.0.0.1 8001   (or 8002)

import { TCPServer, ThreadingTCPServer } from 'sockserv';

const inline = process.argv.includes('--inline');
const addresses = [
  { host: '127.0.0.1', port: 8001 },
  { host: '127.0.0.1', port: 8002 },
];
const handler = new URL('./handler.js', import.meta.url);
const server = inline ? new TCPServer(addresses, handler) : new ThreadingTCPServer(addresses, handler);
await server.listen();
for (const { host, port } of server.addresses) console.log(`listening on tcp://${host}:${port}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void server.close());
await server.serveForever();
await server.close();
