// npm run soak:memory — 1,000 clients each send ~1 MiB of a line (maxFrameBytes − 1 KiB) and never
// its newline, against one sockserv server process with the default client-memory budget
// (maxClientMemory, 256 MiB). Without the budget the server would hold ~1 GB; with it, the
// connections holding the most are closed (ERR_CLIENT_MEMORY) once the total passes the budget, so
// the server keeps under it. Reports the server's RSS (after a full GC) before, at the peak (every
// client's bytes received or its connection closed), and after every client has gone; exits 1 if
// the peak grew past the budget plus slack, or if the client memory it counts is over budget.
//
//   node test/soak/memory.mjs [--clients N] [--frame BYTES] [--budget BYTES] [--json]
//
// --json prints one JSON line with the figures (test/memory-budget.test.ts runs a small version).

import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import { deadline, ensureFileLimit, mib, startServerProcess } from './common.mjs';

const { values } = parseArgs({
  options: { clients: { type: 'string' }, frame: { type: 'string' }, budget: { type: 'string' }, json: { type: 'boolean' } },
});
const CLIENTS = Number(values.clients ?? 1000);
const MAX_FRAME = 1024 * 1024;
const FRAME = Number(values.frame ?? MAX_FRAME - 1024);
const BUDGET = values.budget === undefined ? undefined : Number(values.budget);
const EFFECTIVE_BUDGET = BUDGET ?? 256 * 1024 * 1024;
/** RSS growth allowed over the budget: the runtime's own (buffers freed, not yet returned to the OS, the pool's workers…). */
const RSS_SLACK = 96 * 1024 * 1024;
const CONCURRENT = 100;

if (!ensureFileLimit(CLIENTS + 200, new URL(import.meta.url).pathname)) process.exitCode = undefined;
else await main();

async function main() {
  deadline(5 * 60_000, 'the memory soak');
  const options = { workers: 1, maxFrameBytes: Math.max(MAX_FRAME, FRAME + 1), idleTimeout: 0 };
  if (BUDGET !== undefined) options.maxClientMemory = BUDGET;
  const server = await startServerProcess({
    handler: new URL('../fixtures/echo.js', import.meta.url).pathname,
    options,
    fileLimit: CLIENTS + 200,
  });
  try {
    const before = await server.ask();
    const clients = [];
    const payload = Buffer.alloc(FRAME, 'a'); // no newline: a frame that never completes
    for (let start = 0; start < CLIENTS; start += CONCURRENT) {
      const batch = Array.from({ length: Math.min(CONCURRENT, CLIENTS - start) }, () => openClient(server.port, payload));
      clients.push(...(await Promise.all(batch)));
    }
    // The peak: every client's bytes are in the server, or its connection was closed. Exact: each
    // connection still open holds its whole frame, so the budget's total is FRAME per open client.
    let peak;
    for (;;) {
      const open = clients.filter((c) => !c.closed).length;
      const answer = await server.ask();
      if (clients.every((c) => c.written || c.closed) && answer.stats.connections === open && answer.clientMemory === open * FRAME) {
        peak = { ...answer, open };
        break;
      }
    }
    for (const client of clients) client.socket.destroy();
    let after;
    for (;;) {
      after = await server.ask();
      if (after.stats.connections === 0) break;
    }
    const evicted = CLIENTS - peak.open;
    const result = {
      clients: CLIENTS,
      frameBytes: FRAME,
      budget: EFFECTIVE_BUDGET,
      evicted,
      kept: peak.open,
      clientMemoryAtPeak: peak.clientMemory,
      rssBefore: before.rss,
      rssPeak: peak.rss,
      rssAfter: after.rss,
    };
    if (values.json) console.log(JSON.stringify(result));
    else {
      console.log(`memory soak: ${CLIENTS} clients × ${mib(FRAME)} partial frames, maxClientMemory ${mib(EFFECTIVE_BUDGET)}`);
      console.log(`  kept ${peak.open} connections holding ${mib(peak.clientMemory)}; closed ${evicted} (ERR_CLIENT_MEMORY)`);
      console.log(`  server RSS: before ${mib(before.rss)}, at peak ${mib(peak.rss)}, after ${mib(after.rss)}`);
    }
    const ok = peak.clientMemory <= EFFECTIVE_BUDGET && peak.rss - before.rss <= EFFECTIVE_BUDGET + RSS_SLACK;
    if (!ok) {
      console.error(`memory soak: FAILED (client memory ${mib(peak.clientMemory)}, RSS growth ${mib(peak.rss - before.rss)})`);
      process.exitCode = 1;
    }
  } finally {
    await server.stop();
  }
}

function openClient(port, payload) {
  return new Promise((resolve, reject) => {
    const client = { socket: connect({ port, host: '127.0.0.1' }), written: false, closed: false };
    client.socket.on('error', () => {}); // an evicted client sees a reset
    client.socket.on('close', () => (client.closed = true));
    client.socket.once('connect', () => {
      client.socket.write(payload, () => (client.written = true));
      resolve(client);
    });
    client.socket.once('error', reject);
  });
}
