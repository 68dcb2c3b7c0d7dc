// C10K, the small version `npm test` runs: 1,000 concurrent connections held open on one
// ThreadingTCPServer (2 workers), each exchanging 4 rounds of 5 pipelined requests; every reply is
// checked byte for byte and nothing is lost. `npm run soak:c10k` runs 10,000 connections against a
// server in its own process (test/soak/c10k.mjs).

import { silentLogger, ThreadingTCPServer } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { type Peer, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const CONNECTIONS = 1000;
const ROUNDS = 4;
const PIPELINE = 5;
/** Connections opened at once while ramping up (the listen backlog is 511). */
const RAMP = 250;

test(`${CONNECTIONS} concurrent connections each exchange ${ROUNDS} × ${PIPELINE} pipelined requests: every reply arrives, nothing is lost`, async () => {
  const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), { workers: 2, logger: silentLogger }));
  const { port } = await server.listen();

  const peers: Peer[] = [];
  for (let i = 0; i < CONNECTIONS; i += RAMP) {
    peers.push(...(await Promise.all(Array.from({ length: Math.min(RAMP, CONNECTIONS - i) }, () => registry.peer(port)))));
  }
  await waitUntil(() => server.stats().connections === CONNECTIONS, `the server holds ${CONNECTIONS} connections`);

  const expected = peers.map(() => '');
  for (let r = 0; r < ROUNDS; r++) {
    await Promise.all(
      peers.map(async (peer, c) => {
        const requests = Array.from({ length: PIPELINE }, (_, k) => `c${c}-r${r}-${k}`);
        expected[c] += requests.map((q) => `ok ${q}\n`).join('');
        peer.write(requests.map((q) => `${q}\n`).join(''));
        await peer.untilLines((r + 1) * PIPELINE);
      }),
    );
  }

  let replies = 0;
  peers.forEach((peer, c) => {
    if (peer.text !== expected[c]) throw new Error(`connection ${c}: got ${JSON.stringify(peer.text.slice(0, 200))}`);
    replies += peer.lines.length;
  });
  expect(replies).toBe(CONNECTIONS * ROUNDS * PIPELINE);
  const stats = server.stats();
  expect(stats.connections).toBe(CONNECTIONS);
  expect(stats.requestsOk).toBe(CONNECTIONS * ROUNDS * PIPELINE);
  expect(stats.requestsFailed).toBe(0);
  expect(stats.connectionsRefused).toBe(0);
  expect(peers.every((p) => !p.closed)).toBe(true);

  for (const peer of peers) peer.socket.end();
  await Promise.all(peers.map((peer) => peer.untilClosed()));
  await waitUntil(() => server.stats().connections === 0, 'every connection is released');
});
