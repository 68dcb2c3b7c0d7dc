// TLS (the `tls: { key, cert }` option and the CLI's --tls-cert/--tls-key), with a throwaway
// key and certificate made by the openssl CLI (Debian's openssl; .ci/run installs it). Clients
// are node:tls (verifying the certificate: ca = the certificate) and `openssl s_client -quiet`.
// A plain-TCP client on the TLS port — talking plaintext, or saying nothing at all — must not
// disturb the TLS clients.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { silentLogger, TCPServer, ThreadingTCPServer } from '../src/index.js';
import { startBystanders } from './helpers/bystanders.js';
import { Cli, killAll } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';
import { Peer, Registry, sleep, WAIT_MS } from './helpers/net.js';

const registry = new Registry();
const processes = new Set<ChildProcess>();
let dir = '';
let certFile = '';
let keyFile = '';
let cert: Buffer;
let key: Buffer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sockserv-tls-'));
  certFile = join(dir, 'cert.pem');
  keyFile = join(dir, 'key.pem');
  // Throws (failing every test loudly) if openssl is missing: .ci/run installs it.
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  cert = readFileSync(certFile);
  key = readFileSync(keyFile);
});

afterEach(async () => {
  for (const child of processes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  processes.clear();
  killAll();
  await registry.cleanup();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A node:tls client that verifies the server against the throwaway certificate. */
function tlsPeer(port: number): Promise<Peer> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: cert });
    registry.socket(socket);
    socket.once('error', reject);
    socket.once('secureConnect', () => {
      socket.off('error', reject);
      resolve(new Peer(socket));
    });
  });
}

/** Runs `openssl s_client -quiet`, writes `input`, and resolves with stdout once it holds `expect`. */
async function sClient(port: number, input: string, expected: string): Promise<string> {
  const child = spawn('openssl', ['s_client', '-quiet', '-connect', `127.0.0.1:${port}`, '-CAfile', certFile, '-verify_return_error'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  processes.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  child.stdin.write(input);
  const deadline = Date.now() + WAIT_MS;
  while (!stdout.includes(expected)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`openssl s_client: no ${JSON.stringify(expected)}; stdout ${JSON.stringify(stdout)}; stderr ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  // -quiet ignores EOF on stdin, so the client is stopped rather than ended.
  child.kill('SIGTERM');
  await exited;
  return stdout;
}

describe.each([
  ['ThreadingTCPServer', ThreadingTCPServer],
  ['TCPServer', TCPServer],
] as const)('%s with tls: { key, cert }', (_name, Server) => {
  async function start(): Promise<{ server: InstanceType<typeof Server>; port: number }> {
    const server = registry.server(
      new Server({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), { workers: 2, logger: silentLogger, tls: { key, cert } }),
    );
    const { port } = await server.listen();
    return { server, port };
  }

  test('node:tls clients (certificate verified) get every reply', async () => {
    const { server, port } = await start();
    const clients = await startBystanders(port, registry, { count: 5, requests: 40, connect: () => tlsPeer(port) });
    expect(await clients.done).toBe(5 * 40);
    expect(server.stats().requestsOk).toBe(5 * 40);
    const peer = clients.peers[0]!;
    expect((peer.socket as import('node:tls').TLSSocket).authorized).toBe(true);
  });

  test('openssl s_client -quiet gets its replies', async () => {
    const { port } = await start();
    const stdout = await sClient(port, 'hello\nworld\n', 'ok world\n');
    expect(stdout).toBe('ok hello\nok world\n');
  });

  test('plain-TCP clients on the TLS port (plaintext, or silent) never reach a handler and do not disturb 10 TLS clients × 50 requests', async () => {
    const { server, port } = await start();
    const silent = await registry.peer(port); // connects, then says nothing: a handshake that never starts
    const clients = await startBystanders(port, registry, { connect: () => tlsPeer(port) });
    const plain = await registry.peer(port);
    plain.write('hello\nworld\n');
    const received = await plain.untilClosed();
    expect(received.toString('latin1')).not.toContain('ok hello');
    expect(await clients.done).toBe(10 * 50);
    expect(silent.closed).toBe(false);
    const stats = server.stats();
    expect(stats.requestsOk).toBe(10 * 50);
    expect(stats.connectionsTotal).toBe(10); // only the TLS clients got past the handshake
    // A TLS client arriving after all that is served.
    const late = await tlsPeer(port);
    late.write('late\n');
    await late.untilLines(1);
    expect(late.text).toBe('ok late\n');
  });
});

test('idleTimeout 400 also closes a client that never completes its TLS handshake (a slowloris at the handshake); TLS clients are served meanwhile', async () => {
  const server = registry.server(
    new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), {
      workers: 2,
      logger: silentLogger,
      idleTimeout: 400,
      tls: { key, cert },
    }),
  );
  const { port } = await server.listen();
  const silent = await registry.peer(port);
  const clients = await startBystanders(port, registry, { count: 5, waves: 10, gapMs: 50, connect: () => tlsPeer(port) });
  expect(await clients.done).toBe(5 * 50);
  // Node's own handshakeTimeout is 120 s: only idleTimeout can end this one within the wait.
  await silent.untilClosed();
  expect(silent.bytes).toBe(0);
});

test('sockserv serve --tls-cert/--tls-key prints listening on tls://…, serves node:tls and s_client, exits 0 on SIGTERM', async () => {
  const cli = new Cli(['serve', fixture('fault-modes'), '--port', '0', '--workers', '2', '--tls-cert', certFile, '--tls-key', keyFile]);
  const { scheme, port } = await cli.listening();
  expect(scheme).toBe('tls');
  expect(cli.stdout).toBe(`listening on tls://127.0.0.1:${port}\n`);
  const peer = await tlsPeer(port);
  peer.write('one\ntwo\n');
  await peer.untilLines(2);
  expect(peer.text).toBe('ok one\nok two\n');
  expect(await sClient(port, 'three\n', 'ok three\n')).toBe('ok three\n');
  cli.child.kill('SIGTERM');
  expect(await cli.exit()).toBe(0);
  await peer.untilClosed();
  expect(peer.ended).toBe(true);
});
