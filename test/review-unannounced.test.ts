// Review finding: workers/outcome-writer.ts publish(now) returns at once when nothing new was
// written since the last publish, without looking at how long the oldest unannounced outcome has
// waited; channel-loop.ts #run calls exactly that before an URGENT run. So a finished cheap reply
// stays unannounced for the whole of the next run predicted cheap — and a prediction is per
// command word ("spin 10" and "spin 150000" share one), so a slow one is easily predicted cheap.
// The main thread, asleep, wakes only at WAKE_CHECK_MS (50 ms), finds the reply, and counts a
// MISSED_WAKE (stats().pool.missedWakes, "expected 0") — a wake the protocol never tried to send.

import { ThreadingTCPServer } from '../src/index.js';
import { fixture } from './helpers/client.js';
import { captureLogger, Registry } from './helpers/net.js';

const registry = new Registry();
afterAll(() => registry.cleanup());

test('a cheap reply finished before a slow run predicted cheap is not held for that run; no missed wake is counted', async () => {
  const { logger } = captureLogger();
  const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('adversity'), { workers: 1, logger }));
  const { port } = await server.listen();
  const a = await registry.peer(port);
  const b = await registry.peer(port);
  // Teach the pool that SPIN is cheap (10 µs).
  for (let i = 0; i < 200; i++) a.write('spin 10\n');
  await a.untilLines(200);
  const missedBefore = server.stats().pool!.missedWakes;
  let worst = 0;
  for (let round = 1; round <= 3; round++) {
    await new Promise((resolve) => setTimeout(resolve, 100)); // both threads asleep
    const sent = performance.now();
    a.write('spin 10\n'); // cheap, finishes first
    b.write('spin 150000\n'); // 150 ms, predicted cheap (same command word): runs right after it, in the same turn
    await a.untilLines(200 + round);
    worst = Math.max(worst, performance.now() - sent);
    await b.untilLines(round);
  }
  const missed = server.stats().pool!.missedWakes - missedBefore;
  // Today (the first round; after it SPIN has learned to be heavy): A's reply waits until the main
  // thread's 50 ms wait next times out (0–50 ms, by phase), and one missed wake is counted.
  expect({ missed, worstReplyMs: Math.round(worst) }).toEqual({ missed: 0, worstReplyMs: expect.any(Number) });
}, 30_000);
