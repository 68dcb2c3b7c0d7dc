// The ws broadcast server the broadcast scenario compares against: the way the ws README
// broadcasts (`wss.clients.forEach(client => client.send(data))`), without compression. A first
// message "join" is answered "joined"; every later message goes to every client, the sender too.
//   node dist/bench/servers/ws-broadcast.js

import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';
import { announce, exitOnStop } from './lifecycle.js';

const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' } } });
const wss = new WebSocketServer({ host: values.host, port: 0, perMessageDeflate: false });
wss.on('connection', (ws) => {
  let joined = false;
  ws.on('message', (data, isBinary) => {
    if (!joined) {
      joined = true;
      ws.send('joined');
      return;
    }
    for (const client of wss.clients) client.send(data, { binary: isBinary });
  });
  ws.on('error', () => ws.terminate());
});
exitOnStop(() => new Promise<void>((resolve) => wss.close(() => resolve())));
await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
announce(values.host, (wss.address() as { port: number }).port);
