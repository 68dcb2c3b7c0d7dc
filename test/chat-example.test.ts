// The chat example (examples/chat): ten real clients on the compiled handler, pooled as the example
// runs it and inline. Each gives a nickname, hears every join after its own, every line of the
// nine others (each sender's in the order sent, never its own), and the leave of one who types "q".

import { fileURLToPath } from 'node:url';
import { TCPServer, ThreadingTCPServer, silentLogger } from '../src/index.js';
import { type Peer, Registry, waitUntil } from './helpers/net.js';

const HANDLER = fileURLToPath(new URL('../dist/examples/chat/handler.js', import.meta.url));
const CLIENTS = 10;
const LINES = 5;

const registry = new Registry();
afterEach(() => registry.cleanup());

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const PROMPT = 'nickname: ';

/** The lines a client received after the prompt. */
function heard(peer: Peer): string[] {
  const text = peer.text;
  expect(text.startsWith(PROMPT)).toBe(true);
  const body = text.slice(PROMPT.length);
  return body.slice(0, body.lastIndexOf('\n') + 1).split('\n').slice(0, -1);
}

describe.each([
  ['ThreadingTCPServer (as the example runs)', ThreadingTCPServer],
  ['TCPServer (inline)', TCPServer],
] as const)('chat example on %s', (_name, Server) => {
  test('ten clients: nicknames, joins, everyone hears everyone else in order, "q" leaves', async () => {
    const server = registry.server(new Server({ host: '127.0.0.1', port: 0 }, HANDLER, { workers: 2, logger: silentLogger }));
    const { port } = await server.listen();
    const peers: Peer[] = [];
    for (const i of range(CLIENTS)) {
      const peer = await registry.peer(port);
      await peer.until(() => peer.text === PROMPT, 'the prompt');
      peer.write(`u${i}\n`);
      await peer.until(() => peer.text.endsWith(`* u${i} joined\n`), `u${i}'s join`);
      peers.push(peer);
    }
    expect(server.members('chat')).toHaveLength(CLIENTS);
    peers.forEach((peer, i) => peer.write(range(LINES).map((j) => `line ${j} from u${i}\n`).join('')));
    const others = (CLIENTS - 1) * LINES;
    for (const [i, peer] of peers.entries()) {
      const joins = CLIENTS - i; // its own and every later one
      await peer.until(() => heard(peer).length >= joins + others, `u${i} hears the others`);
      const lines = heard(peer);
      expect(lines.slice(0, joins)).toEqual(range(joins).map((k) => `* u${i + k} joined`));
      const chat = lines.slice(joins);
      expect(chat).toHaveLength(others);
      for (const k of range(CLIENTS)) {
        const from = chat.filter((line) => line.startsWith(`u${k}: `));
        expect(from).toEqual(k === i ? [] : range(LINES).map((j) => `u${k}: line ${j} from u${k}`));
      }
    }
    peers[0]!.write('q\n');
    await peers[0]!.untilClosed();
    for (const peer of peers.slice(1)) await peer.until(() => peer.text.endsWith('* u0 left\n'), 'the leave');
    await waitUntil(() => server.members('chat').length === CLIENTS - 1, 'u0 is out of the room once its connection closed');
  });
});
