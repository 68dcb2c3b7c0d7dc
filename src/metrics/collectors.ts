// Owns the sockserv metric families: their names, help texts and labels, each a prom-client
// Counter or Gauge whose collect() copies a number out of server.stats() at scrape time. Nothing
// here runs per request: the servers keep plain counters, the registry reads them when asked.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { ServerStats } from '../stats.js';
import { RequestDurationHistogram } from './duration-histogram.js';
import type { StatsSampler } from './sampler.js';

type Read = (stats: ServerStats) => number;

/** Counters: totals since each server started. */
const COUNTERS: ReadonlyArray<[name: string, help: string, read: Read]> = [
  ['sockserv_connections_total', 'Connections accepted', (s) => s.connectionsTotal],
  ['sockserv_connections_refused_total', 'Connections refused (maxConnections, verifyRequest, shutting down)', (s) => s.connectionsRefused],
  ['sockserv_protocol_errors_total', 'Bad input: connections ended for ERR_FRAME_TOO_LONG or ERR_FRAME_INVALID, datagrams dropped for maxPacketSize', (s) => s.protocolErrors],
  ['sockserv_bytes_received_total', 'Bytes read from clients', (s) => s.bytesIn],
  ['sockserv_bytes_sent_total', 'Reply bytes handed to client sockets', (s) => s.bytesOut],
  ['sockserv_pushes_total', 'Messages queued to connections by room broadcasts and sendTo (one per member reached)', (s) => s.rooms.pushes],
  ['sockserv_push_disconnects_total', 'Connections closed for not reading what rooms pushed to them (maxPushBytes, pushSoftLimit)', (s) => s.rooms.pushDisconnects],
];

/** Gauges: the state now. */
const GAUGES: ReadonlyArray<[name: string, help: string, read: Read]> = [
  ['sockserv_connections_active', 'Connections open now', (s) => s.connections],
  ['sockserv_requests_in_flight', 'Requests received and not yet answered', (s) => s.requestsInFlight],
  ['sockserv_pool_queue_requests', 'Requests waiting for a worker pool slot', (s) => s.queuedRequests],
  ['sockserv_pool_workers', 'Worker threads in the pool (0 for inline servers)', (s) => s.workers],
  ['sockserv_pool_utilization_ratio', 'Fraction of worker time spent busy since the server started (0..1)', (s) => s.poolUtilization],
  ['sockserv_rooms', 'Rooms with at least one member on this server', (s) => s.rooms.rooms],
  ['sockserv_room_memberships', 'Room memberships on this server (a connection in three rooms counts three)', (s) => s.rooms.memberships],
];

/** Registers every sockserv metric family on `registry`, reading the servers through `sampler`. */
export function registerServerMetrics(registry: Registry, sampler: StatsSampler): void {
  for (const [name, help, read] of COUNTERS) {
    new Counter({
      name,
      help,
      labelNames: ['server'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { label, stats } of sampler.samples()) this.inc({ server: label }, read(stats));
      },
    });
  }
  new Counter({
    name: 'sockserv_requests_total',
    help: 'Requests finished (a session counts once), by outcome: ok, or failed (the handler threw or timed out, its worker died, or a datagram was dropped under overload)',
    labelNames: ['server', 'outcome'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { label, stats } of sampler.samples()) {
        this.inc({ server: label, outcome: 'ok' }, stats.requestsOk);
        this.inc({ server: label, outcome: 'failed' }, stats.requestsFailed);
      }
    },
  });
  new Counter({
    name: 'sockserv_reloads_total',
    help: 'server.reload() calls (SIGHUP, serve --watch), by outcome: ok (the new version serves), or failed (it did not load; the version before kept serving)',
    labelNames: ['server', 'outcome'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { label, stats } of sampler.samples()) {
        this.inc({ server: label, outcome: 'ok' }, stats.reloads);
        this.inc({ server: label, outcome: 'failed' }, stats.reloadsFailed);
      }
    },
  });
  new Gauge({
    name: 'sockserv_handler_info',
    help: 'Always 1; handler_version is the version of the handler serving new requests (1 at start, one more per reload)',
    labelNames: ['server', 'handler_version'],
    registers: [registry],
    collect() {
      this.reset();
      for (const { label, stats } of sampler.samples()) this.set({ server: label, handler_version: String(stats.handlerVersion) }, 1);
    },
  });
  for (const [name, help, read] of GAUGES) {
    new Gauge({
      name,
      help,
      labelNames: ['server'],
      registers: [registry],
      collect() {
        this.reset();
        for (const { label, stats } of sampler.samples()) this.set({ server: label }, read(stats));
      },
    });
  }
  new Gauge({
    name: 'sockserv_event_loop_delay_seconds',
    help: 'Event-loop delay of the main thread (the multiplexer) since the server started: p50, p99 and max (quantile 1)',
    labelNames: ['quantile'],
    registers: [registry],
    collect() {
      // One main thread: every server measures the same loop, so the first one speaks for all.
      const first = sampler.samples()[0];
      if (first === undefined) return;
      const { p50, p99, max } = first.stats.eventLoopDelay;
      this.set({ quantile: '0.5' }, p50 / 1000);
      this.set({ quantile: '0.99' }, p99 / 1000);
      this.set({ quantile: '1' }, max / 1000);
    },
  });
  new RequestDurationHistogram(sampler, registry);
}
