// The deployment docs/deployment.md describes, for real: nginx's `stream {}` module in front of
// two sockserv instances on 127.0.0.1, with `proxy_protocol on;`. Requests go through nginx;
// both instances serve some, and every handler sees the client's own address and source port
// (not nginx's), carried by the PROXY header. Part of `npm run test:system`: nginx is required
// (.ci/run installs it), and this test fails — it does not skip — naming the package where it is missing.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ThreadingTCPServer, silentLogger } from '../../src/index.js';
import { fixture } from '../helpers/client.js';
import { Registry, WAIT_MS, waitUntil } from '../helpers/net.js';
import { TOOLS } from './tools.js';

const registry = new Registry();
let nginx: Nginx | undefined;
afterEach(async () => {
  await registry.cleanup();
  await nginx?.stop();
  nginx = undefined;
});

/** A free port on 127.0.0.1 (bound, read, released: nginx cannot report a port it picked). */
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

/** nginx's build options (`nginx -V`), or a failure that says how to install it. */
function nginxBuild(): string {
  const result = spawnSync('nginx', ['-V'], { encoding: 'utf8' });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error(`nginx is not installed: .ci/run installs it (apt-get install ${TOOLS.nginx.packages})`);
  }
  if (result.error) throw result.error;
  return `${result.stdout}${result.stderr}`; // -V writes to stderr
}

/** The stream module: compiled in, or a dynamic module to load (Debian: libnginx-mod-stream). */
function streamModuleDirective(): string {
  const build = nginxBuild();
  if (/--with-stream(\s|$)/.test(build)) return '';
  const modules = /--modules-path=(\S+)/.exec(build)?.[1] ?? '/usr/lib/nginx/modules';
  const module = join(modules, 'ngx_stream_module.so');
  if (!/--with-stream=dynamic/.test(build) || !existsSync(module)) {
    throw new Error(`this nginx has no stream module (looked for ${module}): install libnginx-mod-stream`);
  }
  return `load_module ${module};`;
}

/** nginx in the foreground, with everything it writes (config, pid, logs) in one temp dir. */
class Nginx {
  readonly dir = mkdtempSync(join(tmpdir(), 'sockserv-nginx-'));
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  output = '';

  constructor(config: string) {
    writeFileSync(join(this.dir, 'nginx.conf'), config);
    // -p: relative paths under the temp dir; -e: the log nginx writes before it reads the config.
    this.child = spawn('nginx', ['-p', this.dir, '-c', join(this.dir, 'nginx.conf'), '-e', join(this.dir, 'error.log')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => (this.output += s));
    this.exited = new Promise((resolve) => this.child.once('close', () => resolve()));
    this.child.once('error', (error) => (this.output += `spawn failed: ${error.message}\n`));
  }

  get errorLog(): string {
    const path = join(this.dir, 'error.log');
    return existsSync(path) ? readFileSync(path, 'utf8') : '';
  }

  /** Resolves once nginx has bound its port and written its pid file; fails with its log if it exits. */
  async ready(): Promise<void> {
    const pidFile = join(this.dir, 'nginx.pid');
    await waitUntil(() => existsSync(pidFile) || this.child.exitCode !== null || this.child.signalCode !== null, 'nginx starts').catch(() => {});
    if (!existsSync(pidFile)) {
      throw new Error(`nginx did not start (exit ${this.child.exitCode}):\n${this.output}\n${this.errorLog}`);
    }
  }

  /** Fast shutdown (SIGTERM), waited for; SIGKILL if it lingers. Removes the temp dir. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const lingered = await Promise.race([
        this.exited.then(() => false),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), WAIT_MS))),
      ]);
      clearTimeout(timer);
      if (lingered) {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function streamConfig(listenPort: number, upstreams: number[]): string {
  return `# Written by test/system/nginx.test.ts.
${streamModuleDirective()}
daemon off;
# Only takes effect when nginx starts as root (CI does): then its worker runs as root too, and
# needs no other account. Ignored, with a warning, otherwise.
user root;
worker_processes 1;
pid nginx.pid;
error_log error.log notice;

events {
  worker_connections 64;
}

stream {
  upstream sockserv {
    # Round robin: consecutive connections alternate between the instances.
    ${upstreams.map((port) => `server 127.0.0.1:${port};`).join('\n    ')}
  }
  server {
    listen 127.0.0.1:${listenPort};
    proxy_pass sockserv;
    # Every upstream connection starts with "PROXY TCP4 <client ip> <nginx ip> <client port> <nginx port>\\r\\n".
    proxy_protocol on;
    proxy_connect_timeout 5s;
  }
}
`;
}

interface Who {
  server: string;
  host: string;
  port: number;
  request: string;
}

describe('behind nginx stream with proxy_protocol on', () => {
  test('both instances serve, and handlers see 127.0.0.1 with the client’s own source port', async () => {
    const instances = await Promise.all(
      ['A', 'B'].map(async (name) => {
        const server = registry.server(
          new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('whoami'), {
            workers: 1,
            logger: silentLogger,
            proxyProtocol: true,
            handlerData: name,
          }),
        );
        return { name, server, port: (await server.listen()).port };
      }),
    );

    const listenPort = await freePort();
    nginx = new Nginx(streamConfig(listenPort, instances.map((i) => i.port)));
    await nginx.ready();

    const replies: Array<{ who: Who; localPort: number }> = [];
    for (let i = 0; i < 6; i++) {
      const peer = await registry.peer(listenPort);
      peer.write(`request ${i}\n`);
      const [line] = await peer.untilLines(1);
      replies.push({ who: JSON.parse(line!) as Who, localPort: peer.localPort });
      peer.socket.end();
      await peer.untilClosed();
    }

    for (const [i, { who, localPort }] of replies.entries()) {
      expect(who).toEqual(expect.objectContaining({ host: '127.0.0.1', port: localPort, request: `request ${i}` }));
    }
    // The port handlers saw is each client's own, never nginx's side of the upstream connection.
    expect(new Set(replies.map((r) => r.who.port)).size).toBe(replies.length);
    expect(new Set(replies.map((r) => r.who.server))).toEqual(new Set(['A', 'B']));
    for (const { server } of instances) expect(server.stats().requestsOk).toBeGreaterThan(0);
  });
});
