// Owns the hand-written node:net line server — the straightforward best a Node programmer would
// write without a framework, and the baseline sockserv is measured against: split each data
// event's bytes on '\n' with indexOf, compute every reply on the event loop, and answer the whole
// chunk with one write. Used alone (plain-net.ts) and once per process under node:cluster.

import { type Server, createServer } from 'node:net';
import { type WorkName, replyFor } from '../work.js';

export function createLineServer(work: WorkName): Server {
  return createServer({ noDelay: true }, (socket) => {
    let pending: Buffer | null = null;
    socket.on('data', (chunk: Buffer) => {
      const data: Buffer = pending === null ? chunk : Buffer.concat([pending, chunk]);
      let start = 0;
      let newline = data.indexOf(10);
      let out = '';
      while (newline !== -1) {
        out += replyFor(work, data.subarray(start, newline)) + '\n';
        start = newline + 1;
        newline = data.indexOf(10, start);
      }
      pending = start < data.length ? data.subarray(start) : null;
      if (out.length > 0) socket.write(out, 'latin1');
    });
    socket.on('error', () => socket.destroy());
  });
}

/** Listens on host:0 and resolves with the bound port. */
export function listenLocal(server: Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0, backlog: 511 }, () => {
      server.off('error', reject);
      const address = server.address();
      if (address === null || typeof address === 'string') reject(new Error('no TCP address'));
      else resolve(address.port);
    });
  });
}
