// The hand-written node:net chat server the broadcast scenario compares against: Buffers only, no
// strings. "join" puts the connection in the room (answered "joined"); after that, each data
// event's complete lines go to every member — the sender too — as one write of a view of the
// bytes received (a partial last line waits for the next chunk).
//   node dist/bench/servers/net-chat.js

import { type Socket, createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { announce, exitOnStop } from './lifecycle.js';
import { listenLocal } from './line-server.js';

const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' } } });
const JOIN = Buffer.from('join\n');
const JOINED = Buffer.from('joined\n');
const members = new Set<Socket>();

const server = createServer({ noDelay: true }, (socket) => {
  let pending: Buffer | null = null;
  let joined = false;
  socket.on('data', (chunk: Buffer) => {
    let data: Buffer = pending === null ? chunk : Buffer.concat([pending, chunk]);
    const last = data.lastIndexOf(10);
    if (last === -1) {
      pending = data;
      return;
    }
    pending = last + 1 < data.length ? data.subarray(last + 1) : null;
    data = last + 1 === data.length ? data : data.subarray(0, last + 1);
    if (!joined && data.subarray(0, JOIN.length).equals(JOIN)) {
      joined = true;
      members.add(socket);
      socket.write(JOINED);
      data = data.subarray(JOIN.length);
      if (data.length === 0) return;
    }
    for (const member of members) member.write(data);
  });
  socket.on('close', () => members.delete(socket));
  socket.on('error', () => socket.destroy());
});
exitOnStop();
announce(values.host, await listenLocal(server, values.host));
