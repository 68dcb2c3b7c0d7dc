// TLS with the openssl CLI (Debian's openssl): a fresh throwaway certificate made by
// `openssl req`, and `openssl s_client -quiet` as the client, against the `tls` option (inline
// and pooled) and the CLI's --tls-cert/--tls-key. Part of `npm run test:system`: a missing
// openssl fails it, naming the package. The node:tls tests are test/tls.test.ts (npm test).

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { TCPServer, ThreadingTCPServer, silentLogger } from '../../src/index.js';
import { Cli, killAll } from '../helpers/cli-process.js';
import { fixture } from '../helpers/client.js';
import { Peer, Registry, WAIT_MS } from '../helpers/net.js';
import { TOOLS, requireTools } from './tools.js';

const registry = new Registry();
const processes = new Set<ChildProcess>();
let dir = '';
let certFile = '';
let keyFile = '';
let cert: Buffer;
let key: Buffer;

beforeAll(() => {
  requireTools(TOOLS.openssl); // fails every test here, naming the package, if openssl is missing
  dir = mkdtempSync(join(tmpdir(), 'sockserv-openssl-'));
  certFile = join(dir, 'cert.pem');
  keyFile = join(dir, 'key.pem');
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

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A node:tls client that verifies the server against the openssl-made certificate. */
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
] as const)('%s with an openssl-made certificate', (_name, Server) => {
  test('openssl s_client -quiet gets its replies; node:tls verifies the certificate', async () => {
    const server = registry.server(
      new Server({ host: '127.0.0.1', port: 0 }, fixture('fault-modes'), { workers: 2, logger: silentLogger, tls: { key, cert } }),
    );
    const { port } = await server.listen();
    const stdout = await sClient(port, 'hello\nworld\n', 'ok world\n');
    expect(stdout).toBe('ok hello\nok world\n');
    const peer = await tlsPeer(port);
    peer.write('again\n');
    await peer.untilLines(1);
    expect(peer.text).toBe('ok again\n');
    expect((peer.socket as import('node:tls').TLSSocket).authorized).toBe(true);
  });
});

test('sockserv serve --tls-cert/--tls-key with openssl’s files serves s_client, exits 0 on SIGTERM', async () => {
  const cli = new Cli(['serve', fixture('fault-modes'), '--port', '0', '--workers', '2', '--tls-cert', certFile, '--tls-key', keyFile]);
  const { scheme, port } = await cli.listening();
  expect(scheme).toBe('tls');
  expect(await sClient(port, 'three\n', 'ok three\n')).toBe('ok three\n');
  cli.child.kill('SIGTERM');
  expect(await cli.exit()).toBe(0);
});
