// Health checks for orchestrators (src/metrics/health.ts): /livez and /readyz on the metrics
// endpoint and on their own (serveHealth, the CLI's --health-port). /readyz is 503 until the
// server listens, 200 while it serves, and 503 from the moment a drain starts — while the
// requests in flight still finish and get their replies — until the endpoint closes with the
// server. markNotReady (the CLI's --drain-delay) turns it 503 earlier, while the server still
// accepts. Real sockets on 127.0.0.1, real workers.

import { request as httpRequest } from 'node:http';
import { type BaseServer, ThreadingTCPServer, TCPServer, serveHealth, silentLogger } from '../src/index.js';
import { serveMetrics } from '../src/metrics/index.js';
import { Cli, killAll } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';
import { Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(async () => {
  killAll();
  await registry.cleanup();
});

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One HTTP request (no keep-alive); rejects if the endpoint refuses the connection. */
function http(url: string, method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body, headers: res.headers }));
    });
    req.once('error', reject);
    req.end();
  });
}

const refused = (url: string) =>
  http(url).then(
    () => false,
    (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED',
  );

function sleepServer(Server: typeof ThreadingTCPServer | typeof TCPServer): BaseServer {
  return registry.server(new Server({ host: '127.0.0.1', port: 0 }, fixture('sleep'), { workers: 2, logger: silentLogger, shutdownTimeout: 10_000 }));
}

describe('/livez and /readyz', () => {
  test('on the metrics endpoint: livez 200 throughout; readyz 503 before listen(), 200 once listening; /metrics still served', async () => {
    const server = sleepServer(ThreadingTCPServer);
    const endpoint = await serveMetrics([server], { port: 0 });
    const base = `http://127.0.0.1:${endpoint.port}`;
    expect(await http(`${base}/livez`)).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await http(`${base}/readyz`)).toMatchObject({ status: 503, body: 'not ready\n' });
    expect(server.serving).toBe(false);
    await server.listen();
    expect(server.serving).toBe(true);
    const ready = await http(`${base}/readyz`);
    expect(ready).toMatchObject({ status: 200, body: 'ready\n' });
    expect(ready.headers['cache-control']).toBe('no-store');
    expect((await http(`${base}/readyz`, 'HEAD')).status).toBe(200);
    expect((await http(`${base}/readyz`, 'POST')).status).toBe(405);
    expect((await http(`${base}/metrics`)).body).toContain('sockserv_requests_total');
    expect((await http(`${base}/nope`)).status).toBe(404);
  });

  test.each([
    ['ThreadingTCPServer', ThreadingTCPServer],
    ['TCPServer', TCPServer],
  ] as const)('%s: readyz turns 503 the moment close() starts draining; the request in flight still gets its reply; then the endpoint closes', async (_name, Server) => {
    const server = sleepServer(Server);
    const health = await serveHealth([server], { port: 0 });
    const readyz = `${health.url}/readyz`;
    const { port } = await server.listen();
    expect((await http(readyz)).status).toBe(200);

    const peer = await registry.peer(port);
    peer.write('800 slow\n');
    await waitUntil(() => server.stats().requestsInFlight === 1, 'the request is in flight');
    const closed = server.close();
    expect(server.serving).toBe(false); // synchronously: no window where a prober still sees "ready"
    expect(await http(readyz)).toMatchObject({ status: 503, body: 'not ready\n' });
    expect((await http(`${health.url}/livez`)).status).toBe(200);
    expect(server.stats().requestsInFlight).toBe(1); // still draining while readyz says 503
    expect(await peer.untilLines(1)).toEqual(['slow']);
    await closed;
    expect(await refused(readyz)).toBe(true);
  });

  test('several servers: ready only while every one of them serves', async () => {
    const a = sleepServer(ThreadingTCPServer);
    const b = sleepServer(ThreadingTCPServer);
    const health = await serveHealth([a, b], { port: 0 });
    await a.listen();
    expect((await http(`${health.url}/readyz`)).status).toBe(503);
    await b.listen();
    expect((await http(`${health.url}/readyz`)).status).toBe(200);
    await a.shutdown();
    expect((await http(`${health.url}/readyz`)).status).toBe(503);
    expect((await http(`${health.url}/metrics`)).status).toBe(404); // health alone: no metrics
  });
});

describe('sockserv serve --health-port', () => {
  test('logs the health URL; readyz 200 while serving, 503 from SIGTERM while the request in flight finishes; exits 0', async () => {
    const cli = new Cli(['serve', fixture('announce-sleep'), '--port', '0', '--workers', '2', '--health-port', '0', '--shutdown-timeout', '10000']);
    const port = await cli.port();
    const line = cli.stderr.split('\n').find((l) => l.includes('health on'));
    expect(line).toBeDefined();
    const url = (JSON.parse(line!) as { url: string }).url;
    expect(await http(`${url}/livez`)).toMatchObject({ status: 200, body: 'ok\n' });
    expect(await http(`${url}/readyz`)).toMatchObject({ status: 200, body: 'ready\n' });

    const peer = await registry.peer(port);
    peer.write('1500 late\n');
    await cli.until(() => cli.stderr.includes('start 1500 late'), 'the request to start');
    cli.child.kill('SIGTERM');
    await cli.until(() => cli.stderr.includes('shutting down'), 'the drain to start');
    expect(await http(`${url}/readyz`)).toMatchObject({ status: 503 });
    expect(peer.lines).toEqual([]); // still in flight
    expect(await peer.untilLines(1)).toEqual(['late']);
    expect(await cli.exit()).toBe(0);
    expect(cli.stdout).toBe(`listening on tcp://127.0.0.1:${port}\n`);
  });

  test('--drain-delay 3000: SIGTERM turns readyz 503 at once while new connections are still served; then it drains and exits 0', async () => {
    const cli = new Cli(['serve', fixture('sleep'), '--port', '0', '--workers', '1', '--health-port', '0', '--drain-delay', '3000']);
    const port = await cli.port();
    const url = (JSON.parse(cli.stderr.split('\n').find((l) => l.includes('health on'))!) as { url: string }).url;
    expect((await http(`${url}/readyz`)).status).toBe(200);
    cli.child.kill('SIGTERM');
    await cli.until(() => cli.stderr.includes('not ready'), 'the not-ready log line');
    expect(await http(`${url}/readyz`)).toMatchObject({ status: 503, body: 'not ready\n' });
    const late = await registry.peer(port); // the listener is still open during the delay
    late.write('late\n');
    expect(await late.untilLines(1)).toEqual(['late']);
    expect(cli.stderr).not.toContain('shutting down: finishing');
    expect(await cli.exit()).toBe(0);
    expect(cli.stderr).toContain('shutting down: finishing');
  });

  test.each([
    ['--drain-delay with --processes', ['--drain-delay', '10', '--processes', '2'], /--drain-delay/],
    ['--health-host without --health-port', ['--health-host', '0.0.0.0'], /--health-host needs --health-port/],
    ['--health-port 70000', ['--health-port', '70000'], /--health-port/],
    ['--health-port with --processes', ['--health-port', '0', '--processes', '2'], /--processes and --health-port/],
  ])('%s exits 2', async (_what, flags, message) => {
    const cli = new Cli(['serve', fixture('echo'), '--port', '0', ...flags]);
    expect(await cli.exit()).toBe(2);
    expect(cli.stderr).toMatch(message);
  });
});
