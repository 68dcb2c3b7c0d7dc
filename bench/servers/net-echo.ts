// The best hand-written node:net line echo: no strings and no per-line work — each data event's
// complete lines go back as one write of a view of the bytes received (a partial last line waits
// for the next chunk). The baseline the session and churn scenarios compare against.
//   node dist/bench/servers/net-echo.js

import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { announce, exitOnStop } from './lifecycle.js';
import { listenLocal } from './line-server.js';

const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' } } });

const server = createServer({ noDelay: true }, (socket) => {
  let pending: Buffer | null = null;
  socket.on('data', (chunk: Buffer) => {
    const data: Buffer = pending === null ? chunk : Buffer.concat([pending, chunk]);
    const last = data.lastIndexOf(10);
    if (last === -1) {
      pending = data;
      return;
    }
    pending = last + 1 < data.length ? data.subarray(last + 1) : null;
    socket.write(last + 1 === data.length ? data : data.subarray(0, last + 1));
  });
  socket.on('error', () => socket.destroy());
});
exitOnStop();
announce(values.host, await listenLocal(server, values.host));
