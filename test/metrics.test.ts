// The Prometheus endpoint (src/metrics/) scraped over real HTTP from real servers: counters equal
// what the test sent, the duration histogram counts every request exactly once, every name follows
// Prometheus conventions, the endpoint closes with its servers, and the `metrics` option and
// `sockserv serve --metrics-port` start it.

import { type ChildProcess, spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { fileURLToPath } from 'node:url';
import { REQUEST_DURATION_BOUNDS_MS, TCPServer, ThreadingTCPServer } from '../src/index.js';
import { serveMetrics } from '../src/metrics/index.js';
import { fixture } from './helpers/client.js';
import { Registry, WAIT_MS, captureLogger, waitUntil } from './helpers/net.js';

const registry = new Registry();
const children = new Set<ChildProcess>();
afterEach(async () => {
  await registry.cleanup();
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Scrape {
  status: number;
  contentType: string;
  body: string;
}

function get(url: string): Promise<Scrape> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, contentType: String(response.headers['content-type']), body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Parses the Prometheus text format strictly enough to catch a malformed line. */
function parseExposition(body: string): { samples: Sample[]; types: Map<string, string>; helps: Set<string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const helps = new Set<string>();
  for (const line of body.split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) ([^ ]+) (.+)$/.exec(line);
    if (meta) {
      if (meta[1] === 'TYPE') types.set(meta[2]!, meta[3]!);
      else helps.add(meta[2]!);
      continue;
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`malformed exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { samples, types, helps };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length !== 1) throw new Error(`expected one ${name} ${JSON.stringify(labels)}, found ${found.length}`);
  return found[0]!.value;
}

/** Sends `count` lines on a fresh connection and waits for every reply. */
async function sendLines(port: number, prefix: string, count: number): Promise<number> {
  const peer = await registry.peer(port);
  const payload = Array.from({ length: count }, (_, i) => `${prefix}${i}\n`).join('');
  peer.write(payload); // all at once: pipelined, so the per-connection timing ring has to grow
  await peer.untilLines(count);
  return Buffer.byteLength(payload);
}

describe('serveMetrics', () => {
  test('a ThreadingTCPServer after some requests: counters match, the histogram counts each request once, names are valid', async () => {
    const server = registry.server(new ThreadingTCPServer({ port: 0 }, fixture('echo'), { workers: 2 }));
    const { port } = await server.listen();
    const endpoint = await serveMetrics([server], { port: 0 });
    expect(endpoint.url).toBe(`http://127.0.0.1:${endpoint.port}/metrics`);

    const sent = (await sendLines(port, 'a', 100)) + (await sendLines(port, 'b', 37)) + (await sendLines(port, 'c', 1));
    const requests = 138;

    const scrape = await get(endpoint.url);
    expect(scrape.status).toBe(200);
    expect(scrape.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const { samples, types, helps } = parseExposition(scrape.body);
    const server_ = { server: `tcp://127.0.0.1:${port}` };

    expect(value(samples, 'sockserv_requests_total', { ...server_, outcome: 'ok' })).toBe(requests);
    expect(value(samples, 'sockserv_requests_total', { ...server_, outcome: 'failed' })).toBe(0);
    expect(value(samples, 'sockserv_connections_total', server_)).toBe(3);
    expect(value(samples, 'sockserv_connections_refused_total', server_)).toBe(0);
    expect(value(samples, 'sockserv_bytes_received_total', server_)).toBe(sent);
    expect(value(samples, 'sockserv_bytes_sent_total', server_)).toBe(sent); // an echo: the same bytes back
    expect(value(samples, 'sockserv_requests_in_flight', server_)).toBe(0);
    expect(value(samples, 'sockserv_pool_queue_requests', server_)).toBe(0);
    expect(value(samples, 'sockserv_pool_workers', server_)).toBe(2);
    const utilization = value(samples, 'sockserv_pool_utilization_ratio', server_);
    expect(utilization).toBeGreaterThanOrEqual(0);
    expect(utilization).toBeLessThanOrEqual(1);
    for (const quantile of ['0.5', '0.99', '1']) {
      expect(value(samples, 'sockserv_event_loop_delay_seconds', { quantile })).toBeGreaterThanOrEqual(0);
    }

    // The histogram: one observation per request, cumulative buckets, +Inf equal to _count.
    const name = 'sockserv_request_duration_seconds';
    expect(types.get(name)).toBe('histogram');
    expect(value(samples, `${name}_count`, server_)).toBe(requests);
    expect(value(samples, `${name}_bucket`, { ...server_, le: '+Inf' })).toBe(requests);
    expect(value(samples, `${name}_sum`, server_)).toBeGreaterThan(0);
    const buckets = samples.filter((s) => s.name === `${name}_bucket` && s.labels.le !== '+Inf');
    expect(buckets.map((s) => Number(s.labels.le))).toEqual(REQUEST_DURATION_BOUNDS_MS.map((ms) => ms / 1000));
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    expect(buckets.at(-1)!.value).toBeLessThanOrEqual(requests);

    // Names: valid, every family has HELP and TYPE, counters end in _total, base units in the name.
    for (const sample of samples) expect(sample.name).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/);
    const families = [...types.keys()];
    for (const family of families) expect(helps.has(family)).toBe(true);
    const ours = families.filter((f) => f.startsWith('sockserv_'));
    expect(ours.sort()).toEqual(
      [
        'sockserv_bytes_received_total',
        'sockserv_bytes_sent_total',
        'sockserv_connections_active',
        'sockserv_connections_refused_total',
        'sockserv_connections_total',
        'sockserv_event_loop_delay_seconds',
        'sockserv_handler_info',
        'sockserv_pool_queue_requests',
        'sockserv_pool_utilization_ratio',
        'sockserv_pool_workers',
        'sockserv_protocol_errors_total',
        'sockserv_push_disconnects_total',
        'sockserv_pushes_total',
        'sockserv_reloads_total',
        'sockserv_request_duration_seconds',
        'sockserv_requests_in_flight',
        'sockserv_requests_total',
        'sockserv_room_memberships',
        'sockserv_rooms',
      ].sort(),
    );
    for (const family of ours) {
      if (types.get(family) === 'counter') expect(family).toMatch(/_total$/);
      else expect(family).not.toMatch(/_total$/);
    }
    // prom-client's default process metrics come along.
    expect(types.get('process_cpu_seconds_total')).toBe('counter');
    expect(types.has('nodejs_eventloop_lag_p99_seconds')).toBe(true);

    // The endpoint goes away with the server.
    await server.close();
    await expect(get(endpoint.url)).rejects.toThrow(/ECONNREFUSED/);
  });

  test('failed requests, active connections, and several servers on one endpoint', async () => {
    const faulty = registry.server(new TCPServer({ port: 0 }, fixture('faulty'), { onHandlerError: 'reply', logger: captureLogger().logger }));
    const echo = registry.server(new ThreadingTCPServer({ port: 0 }, fixture('echo'), { workers: 1 }));
    const { port: faultyPort } = await faulty.listen();
    const { port: echoPort } = await echo.listen();
    const endpoint = await serveMetrics([faulty, echo], { port: 0 });

    const peer = await registry.peer(faultyPort);
    peer.write('one\nthrow two\nthree\nreject four\n');
    expect(await peer.untilLines(4)).toEqual(['ok one', 'ERROR ERR_HANDLER_FAILED', 'ok three', 'ERROR ERR_HANDLER_FAILED']);
    await sendLines(echoPort, 'x', 5);

    const { samples } = parseExposition((await get(endpoint.url)).body);
    const f = { server: `tcp://127.0.0.1:${faultyPort}` };
    const e = { server: `tcp://127.0.0.1:${echoPort}` };
    expect(value(samples, 'sockserv_requests_total', { ...f, outcome: 'ok' })).toBe(2);
    expect(value(samples, 'sockserv_requests_total', { ...f, outcome: 'failed' })).toBe(2);
    expect(value(samples, 'sockserv_request_duration_seconds_count', f)).toBe(4);
    expect(value(samples, 'sockserv_connections_active', f)).toBe(1); // the peer is still connected
    expect(value(samples, 'sockserv_pool_workers', f)).toBe(0); // inline
    expect(value(samples, 'sockserv_requests_total', { ...e, outcome: 'ok' })).toBe(5);
    expect(value(samples, 'sockserv_request_duration_seconds_count', e)).toBe(5);

    // Only /metrics is served.
    expect((await get(endpoint.url.replace('/metrics', '/'))).status).toBe(404);

    // It stays up while one of its servers does; it closes with the last.
    await faulty.close();
    expect((await get(endpoint.url)).status).toBe(200);
    await echo.close();
    await expect(get(endpoint.url)).rejects.toThrow(/ECONNREFUSED/);
  });

  test('request durations switched on mid-connection count only the requests framed after it', async () => {
    const server = registry.server(new TCPServer({ port: 0 }, fixture('sleep')));
    const { port } = await server.listen();
    const peer = await registry.peer(port);
    peer.write('300 before1\n300 before2\n');
    await waitUntil(() => server.stats().requestsInFlight === 2, 'two requests in flight');
    expect(server.stats().requestDurations).toBeNull();

    // Switched on while two earlier requests are still in flight: they are not timed, the next 50 are.
    server.recordRequestDurations();
    peer.write(Array.from({ length: 50 }, (_, i) => `after${i}\n`).join(''));
    const lines = await peer.untilLines(52);
    expect(lines.slice(0, 3)).toEqual(['before1', 'before2', 'after0']);
    const durations = server.stats().requestDurations!;
    expect(durations.count).toBe(50);
    expect(durations.counts.reduce((a, b) => a + b, 0)).toBe(50);
  });
});

describe('the metrics option', () => {
  test('starts the endpoint with the server, logs its URL once, and stops it on close', async () => {
    const { logger, entries } = captureLogger();
    const server = registry.server(new TCPServer({ port: 0 }, fixture('echo'), { logger, metrics: { port: 0 } }));
    const { port } = await server.listen();
    const logged = entries.filter((e) => e.message?.startsWith('metrics on '));
    expect(logged).toHaveLength(1);
    const url = String(logged[0]!.context.url);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    await sendLines(port, 'm', 3);
    const { samples } = parseExposition((await get(url)).body);
    expect(value(samples, 'sockserv_requests_total', { server: `tcp://127.0.0.1:${port}`, outcome: 'ok' })).toBe(3);

    await server.close();
    await expect(get(url)).rejects.toThrow(/ECONNREFUSED/);
  });

  test('a port out of range is ERR_BAD_OPTION', () => {
    expect(() => new TCPServer({ port: 0 }, fixture('echo'), { metrics: { port: 70000 } })).toThrow(
      expect.objectContaining({ code: 'ERR_BAD_OPTION' }),
    );
  });
});

describe('sockserv serve --metrics-port', () => {
  test('logs the metrics URL on stderr, serves it, and keeps stdout to the listening line', async () => {
    const ROOT = fileURLToPath(new URL('..', import.meta.url));
    const child = spawn(process.execPath, ['dist/src/cli/main.js', 'serve', fixture('echo'), '--port', '0', '--workers', '1', '--metrics-port', '0'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));

    await waitUntil(() => stdout.includes('\n') || child.exitCode !== null, 'the listening line', WAIT_MS);
    const port = Number(/^listening on tcp:\/\/127\.0\.0\.1:(\d+)\n$/.exec(stdout)?.[1]);
    expect(port).toBeGreaterThan(0);
    const line = stderr.split('\n').find((l) => l.includes('metrics on'));
    expect(line).toBeDefined();
    const url = (JSON.parse(line!) as { url: string }).url;

    await sendLines(port, 'z', 4);
    const { samples } = parseExposition((await get(url)).body);
    expect(value(samples, 'sockserv_requests_total', { server: `tcp://127.0.0.1:${port}`, outcome: 'ok' })).toBe(4);

    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stdout).toBe(`listening on tcp://127.0.0.1:${port}\n`);
  });
});
