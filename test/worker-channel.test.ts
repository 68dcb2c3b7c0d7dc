// The two ends of one worker channel (src/dispatch/worker-channel.ts and workers/channel-loop.ts)
// wired together on this thread, without piscina: what the main thread assumes the worker knows
// must be what the worker knows. Here, the cache of client addresses (PEER records), which the
// main thread mirrors by counting instead of asking.

import { PEER_CACHE } from '../src/dispatch/channel-protocol.js';
import { WorkerChannel } from '../src/dispatch/worker-channel.js';
import type { ClientAddress } from '../src/handler.js';
// @ts-expect-error a plain JavaScript fixture
import WhoAmI from './fixtures/whoami.js';
import { loopOn } from './helpers/channel-loop.js';
import { waitUntil } from './helpers/net.js';

const address = (id: number): ClientAddress => [`10.0.${(id >> 8) & 255}.${id & 255}`, 1000 + id];

test('a connection introduced again is the newest on both sides: after PEER_CACHE more peers the worker still knows it', async () => {
  const channel = new WorkerChannel<null>(0);
  const loop = loopOn(channel, WhoAmI);
  const running = loop.run();
  expect(channel.checkOpen()).toBe(true); // the loop started: the channel takes requests
  const introduce = (id: number) => channel.introduce(id, Buffer.from(JSON.stringify(address(id))));
  const A = 1;
  introduce(A); // A's first request on this channel
  for (let id = 2; id <= PEER_CACHE; id++) introduce(id);
  const again = introduce(A); // A comes back after running on another channel: introduced again
  introduce(PEER_CACHE + 1); // one more new connection: the oldest entry goes, which must not be A
  expect(channel.knowsPeer(again)).toBe(true);
  channel.send({ conn: null, seq: 0, request: Buffer.from('hi'), ref: 0, abandoned: false, key: 0, est: 0, urgent: true, suspect: false }, A, true);
  channel.publish();
  let reply: unknown;
  await waitUntil(() => {
    channel.drain((_entry, _kind, bytes) => (reply = JSON.parse(bytes!.toString())));
    return reply !== undefined;
  }, 'the reply');
  channel.close();
  await running;
  expect(reply).toMatchObject({ host: address(A)[0], port: address(A)[1] });
});
