// docs/deployment.md's HAProxy setup, for real (Debian's haproxy): two `sockserv serve`
// processes behind HAProxy in TCP mode, with PROXY protocol v2 (`send-proxy-v2`) and HTTP health
// checks on each instance's /readyz (--health-port). Under steady load from clients that open a
// connection per request, one instance gets SIGTERM with --drain-delay: its /readyz turns 503,
// HAProxy's checks take it out of rotation while it still accepts, then it drains the requests
// in flight and exits 0. The clients see no failed request; every handler saw the client's own
// address. Part of `npm run test:system`: a missing haproxy fails it, naming the package.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cli, killAll } from '../helpers/cli-process.js';
import { fixture } from '../helpers/client.js';
import { WAIT_MS, waitUntil } from '../helpers/net.js';
import { TOOLS, requireTools } from './tools.js';

let haproxy: ChildProcess | undefined;
let dir = '';
afterEach(async () => {
  killAll();
  if (haproxy && haproxy.exitCode === null && haproxy.signalCode === null) {
    const exited = new Promise((resolve) => haproxy!.once('close', resolve));
    haproxy.kill('SIGKILL');
    await exited;
  }
  haproxy = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A free port on 127.0.0.1 (bound, read, released: haproxy cannot report a port it picked). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/** The configuration docs/deployment.md shows, with this test's ports. */
function haproxyConfig(listenPort: number, instances: Array<{ port: number; healthPort: number }>): string {
  return `# Written by test/system/haproxy.test.ts (docs/deployment.md shows the same).
global
  maxconn 512

defaults
  mode tcp
  timeout connect 2s
  timeout client 30s
  timeout server 30s
  timeout check 1s
  # A connection refused by an instance that just closed its listener is retried on another.
  retries 3
  option redispatch

frontend sockserv
  bind 127.0.0.1:${listenPort}
  default_backend sockserv

backend sockserv
  balance roundrobin
  # Health: GET /readyz on each instance's --health-port; 503 (draining) takes it out of rotation.
  option httpchk GET /readyz
  http-check expect status 200
  # send-proxy-v2: every connection starts with a PROXY v2 header (sockserv --proxy-protocol).
  default-server send-proxy-v2 check inter 100ms fall 1 rise 2
${instances.map(({ port, healthPort }, i) => `  server s${i} 127.0.0.1:${port} port ${healthPort}`).join('\n')}
`;
}

/** Resolves once something accepts connections on `port`; fails if `exited()` or after WAIT_MS. */
async function accepting(port: number, exited: () => boolean, log: () => string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (exited() || Date.now() > deadline) throw new Error(`haproxy does not accept on ${port}:\n${log()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

interface Who {
  pid: number;
  host: string;
  port: number;
  request: string;
}

/** One request on its own connection through the balancer: connect, send, read the reply line. */
function request(port: number, text: string): Promise<{ who: Who; localPort: number }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    let localPort = 0;
    const timer = setTimeout(() => socket.destroy(new Error(`no reply to ${text} within ${WAIT_MS} ms`)), WAIT_MS);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      localPort = socket.localPort!;
      socket.write(`${text}\n`);
    });
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.includes('\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve({ who: JSON.parse(received.slice(0, received.indexOf('\n'))) as Who, localPort });
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new Error(`connection closed without a reply to ${text} (got ${JSON.stringify(received)})`));
    });
  });
}

test('two instances behind HAProxy (PROXY v2, /readyz checks); one drained mid-load: zero failed requests', async () => {
  requireTools(TOOLS.haproxy);
  dir = mkdtempSync(join(tmpdir(), 'sockserv-haproxy-'));
  const flags = ['--port', '0', '--workers', '1', '--proxy-protocol', '--health-port', '0', '--drain-delay', '1500', '--shutdown-timeout', '10000'];
  const clis = [new Cli(['serve', fixture('who-sleep'), ...flags]), new Cli(['serve', fixture('who-sleep'), ...flags])];
  const instances = await Promise.all(
    clis.map(async (cli) => {
      const port = await cli.port();
      const health = (JSON.parse(cli.stderr.split('\n').find((l) => l.includes('health on'))!) as { url: string }).url;
      return { cli, port, healthPort: Number(new URL(health).port), pid: cli.child.pid! };
    }),
  );

  const listenPort = await freePort();
  writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig(listenPort, instances));
  let output = '';
  haproxy = spawn('haproxy', ['-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'pipe', 'pipe'] });
  haproxy.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  haproxy.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));

  await accepting(listenPort, () => haproxy!.exitCode !== null, () => output);

  // Load: 6 clients, each sending request after request (a connection per request, 0-20 ms of
  // work each), recording every reply and every failure, until told to stop.
  const served = new Map<number, number>(instances.map((i) => [i.pid, 0]));
  const failures: string[] = [];
  const addressMismatches: string[] = [];
  let stop = false;
  let sent = 0;
  const loops = Array.from({ length: 6 }, async (_, client) => {
    for (let n = 0; !stop; n++) {
      const text = `${n % 21} c${client}-${n}`;
      sent++;
      try {
        const { who, localPort } = await request(listenPort, text);
        served.set(who.pid, (served.get(who.pid) ?? 0) + 1);
        if (who.host !== '127.0.0.1' || who.port !== localPort) addressMismatches.push(`${text}: ${JSON.stringify(who)} from port ${localPort}`);
      } catch (error) {
        failures.push(`${text}: ${(error as Error).message}`);
      }
    }
  });

  try {
    const [drained, survivor] = instances as [(typeof instances)[0], (typeof instances)[0]];
    // Both serve before the drain.
    await waitUntil(() => failures.length > 0 || (served.get(drained.pid)! >= 30 && served.get(survivor.pid)! >= 30), 'both instances serve through haproxy');
    expect(failures).toEqual([]);

    drained.cli.child.kill('SIGTERM');
    await drained.cli.until(() => drained.cli.stderr.includes('not ready'), 'the drained instance turns not ready');
    expect(await drained.cli.exit(WAIT_MS)).toBe(0);
    const servedByDrained = served.get(drained.pid)!;
    // And after it has gone, the survivor carries on alone.
    const before = served.get(survivor.pid)!;
    await waitUntil(() => failures.length > 0 || served.get(survivor.pid)! >= before + 100, 'the survivor serves 100 more');
    stop = true;
    await Promise.all(loops);

    expect(failures).toEqual([]);
    expect(addressMismatches).toEqual([]);
    expect(served.get(drained.pid)).toBe(servedByDrained); // nothing reached it after it exited
    expect(drained.cli.stderr).toContain('shutting down: finishing the requests in flight');
    expect(served.get(drained.pid)! + served.get(survivor.pid)!).toBe(sent);
  } catch (error) {
    stop = true;
    await Promise.all(loops);
    throw new Error(`${(error as Error).message}\nhaproxy output:\n${output}\nfailures: ${failures.slice(0, 5).join('\n')}`);
  }
});
