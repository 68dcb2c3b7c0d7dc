// Many clients at once on the worker pool: 100 connections × 100 requests, pipelined in bursts,
// every reply checked byte for byte and in order.

import { silentLogger, ThreadingTCPServer } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { type Peer, prng, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const CLIENTS = 100;
const REQUESTS = 100;
const BURST = 25;

function reverseReply(request: string): string {
  return `${request.split('').reverse().join('')}:${request.length}`;
}

/** Sends REQUESTS requests in bursts of BURST, waiting for each burst's replies; returns what was sent. */
async function client(peer: Peer, id: number): Promise<string[]> {
  const random = prng(1000 + id);
  const sent: string[] = [];
  for (let burst = 0; burst < REQUESTS / BURST; burst++) {
    const batch: string[] = [];
    for (let i = 0; i < BURST; i++) {
      const n = burst * BURST + i;
      batch.push(`c${id}r${n}:${Math.floor(random() * 1e9).toString(36)}${'z'.repeat(Math.floor(random() * 60))}`);
    }
    sent.push(...batch);
    peer.write(batch.map((r) => `${r}\n`).join(''));
    await peer.untilLines(sent.length);
  }
  return sent;
}

test(`${CLIENTS} concurrent clients × ${REQUESTS} pipelined requests: every reply exact and in order`, async () => {
  const server = registry.server(
    new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('reverse'), { workers: 2, logger: silentLogger }),
  );
  const { port } = await server.listen();
  const peers = await Promise.all(Array.from({ length: CLIENTS }, () => registry.peer(port)));
  await waitUntil(() => server.stats().connections === CLIENTS, `the server has accepted ${CLIENTS} connections`);
  expect(server.stats().connectionsTotal).toBe(CLIENTS);

  const sent = await Promise.all(peers.map((peer, id) => client(peer, id)));

  let checked = 0;
  peers.forEach((peer, id) => {
    expect(peer.lines).toEqual(sent[id]!.map(reverseReply));
    expect(peer.text.endsWith('\n')).toBe(true);
    checked += peer.lines.length;
  });
  expect(checked).toBe(CLIENTS * REQUESTS);

  const stats = server.stats();
  expect(stats.requestsReceived).toBe(CLIENTS * REQUESTS);
  expect(stats.requestsOk).toBe(CLIENTS * REQUESTS);
  expect(stats.requestsFailed).toBe(0);
  expect(stats.protocolErrors).toBe(0);
  expect(stats.requestsInFlight).toBe(0);
  expect(stats.workers).toBe(2);

  // Everyone hangs up; the server sees every connection go.
  await Promise.all(
    peers.map((peer) => {
      peer.socket.end();
      return peer.untilClosed();
    }),
  );
  for (const peer of peers) expect(peer.error).toBeUndefined();
  await waitUntil(() => server.stats().connections === 0, 'the server has seen every connection close');
});
