// Owns the `pubsub` option: the rooms of every server given the same Redis (and prefix) are one,
// through Redis pub/sub — as Socket.IO's Redis adapter does. Membership stays on each server's main
// thread; what crosses is messages:
//
//   PREFIX:rooms       every server subscribes: each broadcast, for the members elsewhere
//   PREFIX:node:NODE   one per server (NODE prefixes its client ids): sendTo a client of NODE,
//                      and the answers to NODE's own sendTo calls
//
// Messages are binary (u8 kind, u8 origin length, origin, …; below), so data stays bytes. A server
// ignores its own broadcasts (it delivered them locally already). A sendTo waits for the answer of
// the server holding the client — "queued there", or ERR_NO_SUCH_CLIENT; PUBLISH reaching no
// subscriber means that server is gone (ERR_NO_SUCH_CLIENT at once).
//
// Order: one publisher connection and one subscriber connection per server, and Redis keeps the
// order of one connection's commands into each subscriber — so one sender's messages reach each
// remote member in the order sent, sendTo and broadcasts alike.
//
// The client (node-redis' @redis/client, loaded only when the option is set) is kept well: both
// connections reconnect with a capped backoff (and resubscribe), PING every PING_MS finds a dead
// peer, the loss and the recovery are logged once each, and nothing queues while disconnected:
// a broadcast published then is dropped and counted in a log line (pub/sub is at most once, as in
// Redis itself), a sendTo rejects ERR_PUBSUB_UNAVAILABLE. Publishes in flight are bounded by
// MAX_IN_FLIGHT_BYTES: past it (Redis slower than the broadcasts) they are dropped the same way.
// The first connection must succeed: start() rejects ERR_PUBSUB_UNAVAILABLE and the server does
// not listen.

import type { RedisClientType } from '@redis/client';
import { ErrorCodes, SockservError } from '../errors.js';
import { LogBurst } from '../log-burst.js';
import type { Logger } from '../logger.js';
import type { PubSubOptions } from '../options.js';
import { noSuchClient } from './access.js';
import type { LocalDelivery, RemoteRooms } from './registry.js';

const BROADCAST = 1;
const SEND_TO = 2;
const ANSWER = 3;

const PING_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5_000;
const BACKOFF_FIRST_MS = 50;
const BACKOFF_MAX_MS = 5_000;
/** A sendTo whose answer has not come by then rejects ERR_PUBSUB_UNAVAILABLE. */
const ANSWER_TIMEOUT_MS = 10_000;
/** Bytes of publishes Redis has not acknowledged yet; past it new broadcasts are dropped. */
const MAX_IN_FLIGHT_BYTES = 64 * 1024 * 1024;

type Client = RedisClientType;

interface Asked {
  clientId: string;
  resolve: (error: SockservError | null) => void;
  timer: NodeJS.Timeout;
}

export class RedisPubSub implements RemoteRooms {
  readonly #url: string;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #dropped: LogBurst;
  #pub: Client | null = null;
  #sub: Client | null = null;
  #local: LocalDelivery | null = null;
  #origin = Buffer.alloc(0);
  #started = false;
  #closing = false;
  /** A connection was lost and not yet back (logged once each way). */
  #down = false;
  #inFlightBytes = 0;
  #nextAsk = 0;
  readonly #asked = new Map<number, Asked>();

  constructor(options: Required<PubSubOptions>, logger: Logger) {
    this.#url = options.url;
    this.#prefix = options.prefix;
    this.#logger = logger;
    this.#dropped = new LogBurst(logger, 'pubsub: broadcasts for other processes dropped (Redis unreachable or too slow)', { code: ErrorCodes.PUBSUB_UNAVAILABLE }, 'dropped');
  }

  async start(local: LocalDelivery): Promise<void> {
    this.#local = local;
    this.#origin = Buffer.from(local.node);
    let createClient: typeof import('@redis/client').createClient;
    try {
      ({ createClient } = await import('@redis/client'));
    } catch (error) {
      throw new SockservError(ErrorCodes.PUBSUB_UNAVAILABLE, `pubsub needs the @redis/client package: ${(error as Error).message}`);
    }
    const options = {
      url: this.#url,
      disableOfflineQueue: true,
      pingInterval: PING_MS,
      socket: {
        connectTimeout: CONNECT_TIMEOUT_MS,
        // The first connection must work (start() fails otherwise: false gives up, and connect()
        // rejects with the cause); after that, reconnect for ever.
        reconnectStrategy: (retries: number) => (this.#started && !this.#closing ? Math.min(BACKOFF_FIRST_MS * 2 ** retries, BACKOFF_MAX_MS) : false),
      },
    };
    const pub = createClient(options) as Client;
    const sub = createClient(options) as Client;
    this.#pub = pub;
    this.#sub = sub;
    for (const [client, role] of [[pub, 'publisher'], [sub, 'subscriber']] as const) {
      client.on('error', (err: Error) => this.#lost(role, err));
      client.on('ready', () => this.#ready(role));
    }
    try {
      await Promise.all([pub.connect(), sub.connect()]);
      await sub.subscribe([this.#channel('rooms'), this.#channel(`node:${local.node}`)], (message: Buffer) => this.#receive(message), true);
    } catch (error) {
      this.#closing = true;
      pub.destroy();
      sub.destroy();
      throw new SockservError(ErrorCodes.PUBSUB_UNAVAILABLE, `pubsub: cannot reach ${redact(this.#url)}: ${(error as Error)?.message ?? String(error)}`, { cause: error });
    }
    this.#started = true;
    this.#logger.info({ pubsub: redact(this.#url), prefix: this.#prefix, node: local.node }, 'rooms are shared through Redis pub/sub');
  }

  publish(room: string, data: Buffer): void {
    const roomBytes = Buffer.byteLength(room);
    const message = this.#message(BROADCAST, 2 + roomBytes + data.length);
    let at = message.length - 2 - roomBytes - data.length;
    message.writeUInt16BE(roomBytes, at);
    message.write(room, (at += 2), 'utf8');
    data.copy(message, at + roomBytes);
    void this.#publish(this.#channel('rooms'), message).then((receivers) => {
      if (receivers < 0) this.#dropped.hit({ room });
    });
  }

  sendTo(node: string, clientId: string, data: Buffer): Promise<SockservError | null> {
    const ask = (this.#nextAsk = (this.#nextAsk + 1) >>> 0);
    const idBytes = Buffer.byteLength(clientId);
    const message = this.#message(SEND_TO, 4 + 2 + idBytes + data.length);
    let at = message.length - 6 - idBytes - data.length;
    message.writeUInt32BE(ask, at);
    message.writeUInt16BE(idBytes, (at += 4));
    message.write(clientId, (at += 2), 'utf8');
    data.copy(message, at + idBytes);
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#answer(ask, new SockservError(ErrorCodes.PUBSUB_UNAVAILABLE, `pubsub: no answer from the process holding ${clientId} within ${ANSWER_TIMEOUT_MS} ms`)), ANSWER_TIMEOUT_MS);
      timer.unref();
      this.#asked.set(ask, { clientId, resolve, timer });
      void this.#publish(this.#channel(`node:${node}`), message).then((receivers) => {
        if (receivers < 0) this.#answer(ask, new SockservError(ErrorCodes.PUBSUB_UNAVAILABLE, `pubsub: Redis unreachable, ${clientId} not reached`));
        else if (receivers === 0) this.#answer(ask, noSuchClient(clientId)); // no server listens for that node: it is gone
      });
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    for (const ask of [...this.#asked.keys()]) this.#answer(ask, new SockservError(ErrorCodes.SERVER_CLOSED, 'the server closed before the other process answered'));
    const clients = [this.#pub, this.#sub].filter((c): c is Client => c !== null);
    this.#pub = this.#sub = null;
    await Promise.all(clients.map((client) => (client.isOpen ? client.close().catch(() => client.destroy()) : undefined)));
  }

  // ---- inbound ---------------------------------------------------------------------------

  #receive(message: Buffer): void {
    const local = this.#local;
    if (local === null || message.length < 2) return;
    const kind = message[0]!;
    const originEnd = 2 + message[1]!;
    const origin = message.toString('latin1', 2, originEnd);
    let at = originEnd;
    if (kind === BROADCAST) {
      if (origin === local.node) return; // ours: delivered here when sent
      const roomBytes = message.readUInt16BE(at);
      const room = message.toString('utf8', at + 2, at + 2 + roomBytes);
      local.broadcastLocal(room, Buffer.from(message.subarray(at + 2 + roomBytes))); // a copy: members keep it
    } else if (kind === SEND_TO) {
      const ask = message.readUInt32BE(at);
      const idBytes = message.readUInt16BE((at += 4));
      const clientId = message.toString('utf8', (at += 2), at + idBytes);
      const delivered = local.sendToLocal(clientId, Buffer.from(message.subarray(at + idBytes)));
      const answer = this.#message(ANSWER, 5);
      answer.writeUInt32BE(ask, answer.length - 5);
      answer[answer.length - 1] = delivered ? 1 : 0;
      void this.#publish(this.#channel(`node:${origin}`), answer);
    } else if (kind === ANSWER) {
      const ask = message.readUInt32BE(at);
      const asked = this.#asked.get(ask);
      if (asked !== undefined) this.#answer(ask, message[at + 4] === 1 ? null : noSuchClient(asked.clientId));
    }
  }

  #answer(ask: number, error: SockservError | null): void {
    const asked = this.#asked.get(ask);
    if (asked === undefined) return;
    this.#asked.delete(ask);
    clearTimeout(asked.timer);
    asked.resolve(error);
  }

  // ---- outbound --------------------------------------------------------------------------

  /** A message of `kind` with this server as origin, and `rest` bytes for the caller to fill at its end. */
  #message(kind: number, rest: number): Buffer {
    const origin = this.#origin;
    const message = Buffer.allocUnsafe(2 + origin.length + rest);
    message[0] = kind;
    message[1] = origin.length;
    origin.copy(message, 2);
    return message;
  }

  /** PUBLISH; resolves with the subscribers reached, or -1 when it could not be sent (never rejects). */
  async #publish(channel: string, message: Buffer): Promise<number> {
    const pub = this.#pub;
    if (pub === null || !pub.isReady || this.#inFlightBytes + message.length > MAX_IN_FLIGHT_BYTES) return -1;
    this.#inFlightBytes += message.length;
    try {
      return await pub.publish(channel, message);
    } catch {
      return -1;
    } finally {
      this.#inFlightBytes -= message.length;
    }
  }

  #channel(name: string): string {
    return `${this.#prefix}:${name}`;
  }

  #lost(role: string, err: Error): void {
    if (!this.#started || this.#closing || this.#down) return;
    this.#down = true;
    this.#logger.warn({ code: ErrorCodes.PUBSUB_UNAVAILABLE, role, err: err.message, pubsub: redact(this.#url) }, 'pubsub: lost the connection to Redis; reconnecting (messages for other processes are dropped meanwhile)');
  }

  #ready(role: string): void {
    if (!this.#down || !this.#pub?.isReady || !this.#sub?.isReady) return;
    this.#down = false;
    this.#logger.info({ role, pubsub: redact(this.#url) }, 'pubsub: reconnected to Redis');
  }
}

/** The URL without its password, for logs. */
function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}
