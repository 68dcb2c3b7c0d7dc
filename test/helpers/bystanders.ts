// Test helper: bystander connections — well-behaved clients that run while a test injects a
// fault, each sending its own numbered requests in paced waves and checking that every reply
// arrives, exactly and in order. `done` resolves with the number of replies counted, so a test
// can assert the exact total (count × requests).

import { encodeCommand } from '../../src/index.js';
import { lengthFrame, type Peer, type Registry, sleep } from './net.js';

/** How one request and its expected reply look on the wire (the fixtures answer "ok <request>"). */
export interface Codec {
  request(text: string): Buffer;
  reply(text: string): Buffer;
}

export const LINE_CODEC: Codec = {
  request: (text) => Buffer.from(`${text}\n`),
  reply: (text) => Buffer.from(`ok ${text}\n`),
};

export const LENGTH_CODEC: Codec = {
  request: (text) => lengthFrame(text),
  reply: (text) => lengthFrame(`ok ${text}`),
};

/** RESP: the handler sees the canonical multibulk frame and its reply is written unframed. */
export const RESP_CODEC: Codec = {
  request: (text) => encodeCommand([text]),
  reply: (text) => Buffer.concat([Buffer.from('ok '), encodeCommand([text])]),
};

export interface BystanderOptions {
  /** Connections. Default 10. */
  count?: number;
  /** Requests per connection. Default 50. */
  requests?: number;
  /** The requests go out in this many waves… Default 5. */
  waves?: number;
  /** …this many ms apart. Default 20. */
  gapMs?: number;
  codec?: Codec;
  /** Opens one connection (default: a plain TCP Peer on 127.0.0.1:port). */
  connect?: () => Promise<Peer>;
  /** Request text prefix, so two groups in one test stay apart. Default "by". */
  prefix?: string;
}

export interface Bystanders {
  peers: Peer[];
  /** Resolves with the number of replies received (all of them, checked byte for byte); rejects on any loss. */
  done: Promise<number>;
}

/** Connects the bystanders (resolving once all are connected) and starts their waves. */
export async function startBystanders(port: number, registry: Registry, options: BystanderOptions = {}): Promise<Bystanders> {
  const { count = 10, requests = 50, waves = 5, gapMs = 20, codec = LINE_CODEC, prefix = 'by' } = options;
  const connect = options.connect ?? (() => registry.peer(port));
  const peers = await Promise.all(Array.from({ length: count }, () => connect()));
  const perWave = Math.ceil(requests / waves);
  const run = async (peer: Peer, c: number): Promise<number> => {
    const texts = Array.from({ length: requests }, (_, i) => `${prefix}${c}-${i}`);
    const expected = Buffer.concat(texts.map((t) => codec.reply(t)));
    const arrived = peer.until(() => peer.bytes >= expected.length, `${requests} replies on bystander ${c}`);
    arrived.catch(() => {}); // awaited below; a close during the waves must not go unhandled meanwhile
    for (let w = 0; w < waves; w++) {
      if (peer.closed) break;
      const wave = texts.slice(w * perWave, (w + 1) * perWave);
      if (wave.length > 0) peer.write(Buffer.concat(wave.map((t) => codec.request(t))));
      if (w < waves - 1) await sleep(gapMs);
    }
    await arrived;
    const received = peer.received;
    if (!received.equals(expected)) {
      let at = 0;
      while (at < expected.length && received[at] === expected[at]) at++;
      throw new Error(
        `bystander ${c}: replies differ at byte ${at}: got ${JSON.stringify(received.subarray(at, at + 60).toString('latin1'))}, ` +
          `expected ${JSON.stringify(expected.subarray(at, at + 60).toString('latin1'))}`,
      );
    }
    return texts.length;
  };
  const done = Promise.all(peers.map((peer, c) => run(peer, c))).then((counts) => counts.reduce((a, b) => a + b, 0));
  done.catch(() => {}); // the test awaits it; this only keeps an early failure from going unhandled
  return { peers, done };
}
