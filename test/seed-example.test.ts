// The seed example (examples/seed): the classic greeting / " good" / "q" server on two ports in
// one process. Its compiled handler (dist/examples/seed/handler.js, what `npm run example:seed`
// serves) runs here on two ephemeral ports, pooled as the example runs it and inline as with
// --inline; the client speaks raw bytes, one message per round trip, as the recv() loop expects.

import { fileURLToPath } from 'node:url';
import { type BaseServer, silentLogger, TCPServer, ThreadingTCPServer } from '../src/index.js';
import { type Peer, Registry } from './helpers/net.js';

const HANDLER = fileURLToPath(new URL('../dist/examples/seed/handler.js', import.meta.url));
const GREETING = 'Beijing welcomes you';

const registry = new Registry();
afterEach(() => registry.cleanup());

async function startSeed(Server: typeof TCPServer | typeof ThreadingTCPServer): Promise<BaseServer> {
  const server = registry.server(new Server([{ port: 0 }, { port: 0 }], HANDLER, { workers: 2, logger: silentLogger }));
  await server.listen();
  return server;
}

/** Sends one message and waits until the reply to it has arrived. */
async function say(peer: Peer, message: string, reply: string): Promise<void> {
  const before = peer.text;
  peer.write(message);
  await peer.until(() => peer.text.length >= before.length + reply.length, `the reply to ${JSON.stringify(message)}`);
  expect(peer.text.slice(before.length)).toBe(reply);
}

describe.each([
  ['ThreadingTCPServer (the example as shipped)', ThreadingTCPServer],
  ['TCPServer (--inline)', TCPServer],
] as const)('seed example on %s', (_name, Server) => {
  test('both ports greet, answer " good", and "q" ends the conversation with EOF', async () => {
    const server = await startSeed(Server);
    expect(server.addresses).toHaveLength(2);
    const ports = server.addresses.map((a) => a.port);
    expect(new Set(ports).size).toBe(2);
    for (const port of ports) {
      const peer = await registry.peer(port);
      await peer.until(() => peer.text.length >= GREETING.length, 'the greeting');
      expect(peer.text).toBe(GREETING);
      await say(peer, 'hello', 'hello good');
      await say(peer, `port ${port}\n`, `port ${port} good\n`); // a line ending is kept after " good"
      await say(peer, 'crlf\r\n', 'crlf good\r\n');
      peer.write('q\n');
      const received = await peer.untilClosed();
      expect(received.toString()).toBe(`${GREETING}hello goodport ${port} good\ncrlf good\r\n`);
      expect(peer.ended).toBe(true);
    }
  });

  test('"q" without a line ending ends it too; a client that closes first ends its session', async () => {
    const server = await startSeed(Server);
    const [first, second] = server.addresses;
    const quitter = await registry.peer(first!.port);
    await quitter.until(() => quitter.text === GREETING, 'the greeting');
    quitter.write('q');
    expect((await quitter.untilClosed()).toString()).toBe(GREETING);

    const leaver = await registry.peer(second!.port);
    await leaver.until(() => leaver.text === GREETING, 'the greeting');
    leaver.socket.end();
    expect((await leaver.untilClosed()).toString()).toBe(GREETING);
    expect(leaver.ended).toBe(true);
  });

  test('shutdown with conversations open on both ports: each gets EOF, shutdown resolves', async () => {
    const server = await startSeed(Server);
    const peers = await Promise.all(server.addresses.map((a) => registry.peer(a.port)));
    for (const peer of peers) await peer.until(() => peer.text === GREETING, 'the greeting');
    for (const peer of peers) await say(peer, 'still here', 'still here good');
    await server.shutdown();
    for (const peer of peers) {
      expect((await peer.untilClosed()).toString()).toBe(`${GREETING}still here good`);
      expect(peer.ended).toBe(true);
    }
    expect(server.stats().connections).toBe(0);
  });
});
