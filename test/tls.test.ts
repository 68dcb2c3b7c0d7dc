// TLS (the `tls: { key, cert }` option and the CLI's --tls-cert/--tls-key), with the throwaway
// test certificate in test/fixtures/tls (no openssl needed). Clients are node:tls, verifying the
// certificate (ca = the certificate). The openssl CLI's side — a fresh certificate, and
// `openssl s_client` as the client — is in test/system/openssl.test.ts (npm run test:system).
// A plain-TCP client on the TLS port — talking plaintext, or saying nothing at all — must not
// disturb the TLS clients.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { connect as tlsConnect } from 'node:tls';
import { silentLogger, TCPServer, ThreadingTCPServer } from '../src/index.js';
import { startBystanders } from './helpers/bystanders.js';
import { Cli, killAll } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';
import { Peer, Registry } from './helpers/net.js';

const registry = new Registry();
const certFile = fileURLToPath(new URL('./fixtures/tls/cert.pem', import.meta.url));
const keyFile = fileURLToPath(new URL('./fixtures/tls/key.pem', import.meta.url));
const cert = readFileSync(certFile);
const key = readFileSync(keyFile);

afterEach(async () => {
  killAll();
  await registry.cleanup();
});

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

test('sockserv serve --tls-cert/--tls-key prints listening on tls://…, serves node:tls, exits 0 on SIGTERM', async () => {
  const cli = new Cli(['serve', fixture('fault-modes'), '--port', '0', '--workers', '2', '--tls-cert', certFile, '--tls-key', keyFile]);
  const { scheme, port } = await cli.listening();
  expect(scheme).toBe('tls');
  expect(cli.stdout).toBe(`listening on tls://127.0.0.1:${port}\n`);
  const peer = await tlsPeer(port);
  peer.write('one\ntwo\n');
  await peer.untilLines(2);
  expect(peer.text).toBe('ok one\nok two\n');
  cli.child.kill('SIGTERM');
  expect(await cli.exit()).toBe(0);
  await peer.untilClosed();
  expect(peer.ended).toBe(true);
});
