// Owns a server's rooms, on the main thread — the thread that owns every socket: which connection
// is in which room, the client ids, and the push path that queues a message on each member.
//
//   client ids   `NODE.N`: NODE is random per server (so ids are unique across the processes that
//                share rooms through `pubsub`, and name the process a sendTo must reach), N counts
//                its connections. Given when a connection is made, forgotten when it closes: a
//                connection's memberships end with it.
//   the push     a message goes to each member through its own ordered output (Connection.push,
//                SessionConnection.push): after what is queued there, never inside a reply. It is
//                framed once per broadcast (the framing's push form: a line, a length prefix, a
//                RESP push) and shared by every member.
//   limits       after each push, a member whose unsent output (replies and pushes, ours and the
//                socket's) passed maxPushBytes — or stayed past pushSoftLimit for pushSoftSeconds
//                — is closed, with a log line (Redis's client-output-buffer-limit for pub/sub). The
//                sender never waits for a member; what a member holds counts against
//                maxClientMemory too.
//   other        with `pubsub`, broadcasts are published for the other processes and sendTo to a
//   processes    client of another process goes there (./redis-pubsub.ts); what arrives from them
//                is delivered here like a local call. Told that the server runs in several
//                processes without it (refuseWithout), every call is refused with
//                ERR_PUBSUB_REQUIRED rather than split into rooms per process.
//
// Invariants: a call is applied at once, in the order calls arrive (a worker's calls arrive in its
// ring's order, so one sender's messages reach each member in the order sent); a message reaches
// each member at most once; a member's memberships end when its connection closes.

import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ErrorCodes, SockservError } from '../errors.js';
import { LogBurst } from '../log-burst.js';
import type { Logger } from '../logger.js';
import type { ResolvedOptions } from '../options.js';
import type { RoomStats } from '../stats.js';
import { type RoomAccess, checkClientId, checkRoom, messageBytes, noSuchClient } from './access.js';
import { RoomOp, type RoomTerms, decodeRoomCall } from './records.js';

/** A connection as the rooms see it (Connection, SessionConnection). */
export interface RoomMember {
  readonly clientAddress: readonly [string, number];
  /** A session takes pushes as raw bytes; a framed connection takes them framed as a reply. */
  readonly rawPushes: boolean;
  /**
   * Queues one message for the client after what is queued, never inside a reply. Returns the
   * bytes now waiting to be sent to it (ours and the socket's), or -1 once it takes no more.
   */
  push(bytes: Buffer): number;
  /** Closes the connection now. */
  destroy(): void;
}

/** What a connection asks of the rooms when it is made: its client id. */
export interface RoomMembership {
  admit(member: RoomMember): string;
}

/** What the link to other processes delivers here. */
export interface LocalDelivery {
  /** This server's node id: the prefix of its client ids. */
  readonly node: string;
  /** A broadcast from another process, for this server's members of `room`. */
  broadcastLocal(room: string, data: Buffer): void;
  /** A sendTo from another process; false when `clientId` is not here (any more). */
  sendToLocal(clientId: string, data: Buffer): boolean;
}

/** The link to the other processes sharing the rooms (`pubsub`: ./redis-pubsub.ts). */
export interface RemoteRooms {
  start(local: LocalDelivery): Promise<void>;
  /** Publishes a broadcast for the other processes; failures are the link's to log. */
  publish(room: string, data: Buffer): void;
  /** Delivers to a client of process `node`; resolves null once queued there, or the error sendTo rejects with. */
  sendTo(node: string, clientId: string, data: Buffer): Promise<SockservError | null>;
  close(): Promise<void>;
}

/** How a framed connection's pushes are framed before the framer's encode (RESP: a push); absent: the bytes as they are. */
type PushFrame = (data: Buffer, room: string | null) => Buffer;

class Client {
  rooms: Set<string> | null = null;
  /** performance.now() since when its unsent output has been past pushSoftLimit, or -1. */
  softSince = -1;
  /** Closed for the push limits: it takes nothing more while its close completes. */
  cut = false;
  constructor(
    readonly id: string,
    readonly member: RoomMember,
  ) {}
}

const RESOLVED = Promise.resolve();

export class RoomRegistry implements RoomAccess, RoomMembership, LocalDelivery {
  readonly node = randomBytes(6).toString('base64url');
  readonly #logger: Logger;
  readonly #maxPushBytes: number;
  readonly #softLimit: number;
  readonly #softMs: number;
  readonly #pushFrame: PushFrame | undefined;
  readonly #remote: RemoteRooms | null;
  readonly #clients = new Map<string, Client>();
  readonly #rooms = new Map<string, Set<Client>>();
  readonly #overflows: LogBurst;
  #nextClient = 0;
  #memberships = 0;
  #pushes = 0;
  #pushDisconnects = 0;
  /** Why every call is refused (several processes without pubsub), or null. */
  #refusal: SockservError | null = null;
  #refusalLogged = false;

  constructor(options: ResolvedOptions, logger: Logger, pushFrame: PushFrame | undefined, remote: RemoteRooms | null) {
    this.#logger = logger;
    this.#maxPushBytes = options.maxPushBytes;
    this.#softLimit = options.pushSoftLimit;
    this.#softMs = options.pushSoftSeconds * 1000;
    this.#pushFrame = pushFrame;
    this.#remote = remote;
    this.#overflows = new LogBurst(
      logger,
      'closed connections that did not read what rooms pushed to them',
      { code: ErrorCodes.PUSH_BUFFER_OVERFLOW, maxPushBytes: options.maxPushBytes, pushSoftLimit: options.pushSoftLimit, pushSoftSeconds: options.pushSoftSeconds },
      'closed',
    );
  }

  // ---- life ------------------------------------------------------------------------------

  /** Connects to the other processes (with pubsub); rejects ERR_PUBSUB_UNAVAILABLE if they cannot be reached. */
  async start(): Promise<void> {
    await this.#remote?.start(this);
  }

  async close(): Promise<void> {
    await this.#remote?.close();
  }

  /**
   * The server runs in several processes and has no pubsub: from now on every room call is
   * refused with ERR_PUBSUB_REQUIRED (and the first refusal logged), rather than each process
   * keeping rooms of its own.
   */
  refuseWithout(why: string): void {
    if (this.#remote !== null) return;
    this.#refusal = new SockservError(
      ErrorCodes.PUBSUB_REQUIRED,
      `rooms need pubsub (--pubsub redis://host:port) when ${why}: each process would otherwise have rooms of its own`,
    );
  }

  /** What a worker must know of this server's rooms (its channel carries it: workers/rooms-client.ts). */
  workerTerms(): RoomTerms {
    return { refused: this.#refusal !== null, maxPushBytes: this.#maxPushBytes };
  }

  // ---- connections -----------------------------------------------------------------------

  admit(member: RoomMember): string {
    const id = `${this.node}.${(++this.#nextClient).toString(36)}`;
    this.#clients.set(id, new Client(id, member));
    return id;
  }

  /** The connection `clientId` closed: it leaves every room. */
  forget(clientId: string): void {
    const client = this.#clients.get(clientId);
    if (client === undefined) return;
    this.#clients.delete(clientId);
    if (client.rooms !== null) for (const room of client.rooms) this.#remove(room, client);
  }

  // ---- what handlers call (RoomAccess: inline servers, and workers' calls) ----------------

  join(sender: string, room: string): Promise<void> {
    return settle(() => this.#join(sender, room));
  }

  leave(sender: string, room: string): Promise<void> {
    return settle(() => this.#leave(sender, room));
  }

  broadcast(sender: string, room: string, data: string | Uint8Array, exceptSelf: boolean): Promise<void> {
    return settle(() => this.#broadcast(sender, room, messageBytes(data), exceptSelf));
  }

  sendTo(_sender: string, clientId: string, data: string | Uint8Array): Promise<void> {
    return settle(() => this.#sendTo(checkClientId(clientId), messageBytes(data)));
  }

  /**
   * A ROOM record from a worker: applied now; `answer` (when the call asked for one) gets its
   * outcome — at once, or once another process answered. A call that asked for none cannot fail
   * here (the worker asks whenever it might); if one does, it is logged.
   */
  fromWorker(op: number, payload: Buffer, answer: ((error: SockservError | null) => void) | null): void {
    let outcome: SockservError | null | Promise<SockservError | null>;
    try {
      const { sender, target, data } = decodeRoomCall(payload);
      if (op === RoomOp.JOIN) outcome = this.#join(sender, target);
      else if (op === RoomOp.LEAVE) outcome = this.#leave(sender, target);
      else if (op === RoomOp.BROADCAST || op === RoomOp.BROADCAST_EXCEPT_SELF) outcome = this.#broadcast(sender, target, data, op === RoomOp.BROADCAST_EXCEPT_SELF);
      else if (op === RoomOp.SEND_TO) outcome = this.#sendTo(target, data);
      else outcome = new SockservError(ErrorCodes.BAD_OPTION, `unknown room call ${op}`);
    } catch (error) {
      outcome = error instanceof SockservError ? error : new SockservError(ErrorCodes.BAD_OPTION, String(error));
    }
    const reply = answer ?? this.#unanswered;
    if (outcome instanceof Promise) outcome.then(reply, (error: unknown) => reply(asError(error)));
    else reply(outcome);
  }

  readonly #unanswered = (error: SockservError | null): void => {
    if (error !== null) this.#logger.warn({ err: error, code: error.code }, 'a room call that asked for no answer failed');
  };

  // ---- what the server object offers -----------------------------------------------------

  /** The rooms with members on this server. */
  rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /** The client ids of this server's members of `room`. */
  members(room: string): string[] {
    const members = this.#rooms.get(room);
    return members === undefined ? [] : [...members].map((client) => client.id);
  }

  stats(): RoomStats {
    return { rooms: this.#rooms.size, memberships: this.#memberships, pushes: this.#pushes, pushDisconnects: this.#pushDisconnects };
  }

  // ---- from the other processes (LocalDelivery) ------------------------------------------

  broadcastLocal(room: string, data: Buffer): void {
    this.#fanOut(room, data, null);
  }

  sendToLocal(clientId: string, data: Buffer): boolean {
    const client = this.#clients.get(clientId);
    if (client === undefined || client.cut) return false;
    return this.#deliver(client, client.member.rawPushes ? data : this.#frame(data, null));
  }

  // ---- the calls -------------------------------------------------------------------------

  #join(sender: string, room: string): SockservError | null {
    checkRoom(room);
    if (this.#refusal !== null) return this.#refused();
    if (sender === '') return new SockservError(ErrorCodes.UNSUPPORTED, 'a datagram has no connection to keep in a room');
    const client = this.#clients.get(sender);
    if (client === undefined || client.rooms?.has(room)) return null; // gone: its memberships ended with it
    (client.rooms ??= new Set()).add(room);
    let members = this.#rooms.get(room);
    if (members === undefined) this.#rooms.set(room, (members = new Set()));
    members.add(client);
    this.#memberships++;
    return null;
  }

  #leave(sender: string, room: string): SockservError | null {
    checkRoom(room);
    if (this.#refusal !== null) return this.#refused();
    const client = this.#clients.get(sender);
    if (client?.rooms?.delete(room)) this.#remove(room, client);
    return null;
  }

  #broadcast(sender: string, room: string, data: Buffer, exceptSelf: boolean): SockservError | null {
    checkRoom(room);
    if (this.#refusal !== null) return this.#refused();
    if (data.length > this.#maxPushBytes) return this.#tooBig(data.length);
    this.#fanOut(room, data, exceptSelf ? sender : null);
    this.#remote?.publish(room, data);
    return null;
  }

  #sendTo(clientId: string, data: Buffer): SockservError | null | Promise<SockservError | null> {
    if (this.#refusal !== null) return this.#refused();
    if (data.length > this.#maxPushBytes) return this.#tooBig(data.length);
    if (this.sendToLocal(clientId, data)) return null;
    const node = clientId.slice(0, Math.max(0, clientId.lastIndexOf('.')));
    if (this.#remote !== null && node !== '' && node !== this.node && !this.#clients.has(clientId)) return this.#remote.sendTo(node, clientId, data);
    return noSuchClient(clientId);
  }

  #fanOut(room: string, data: Buffer, except: string | null): void {
    const members = this.#rooms.get(room);
    if (members === undefined) return;
    let framed: Buffer | null = null;
    for (const client of members) {
      if (client.cut || client.id === except) continue;
      this.#deliver(client, client.member.rawPushes ? data : (framed ??= this.#frame(data, room)));
    }
  }

  #frame(data: Buffer, room: string | null): Buffer {
    return this.#pushFrame === undefined ? data : this.#pushFrame(data, room);
  }

  /** Queues `bytes` on the member, then applies the push limits to what it holds; false if it takes nothing more (closing). */
  #deliver(client: Client, bytes: Buffer): boolean {
    const unsent = client.member.push(bytes);
    if (unsent < 0) return false;
    this.#pushes++;
    if (unsent > this.#maxPushBytes) this.#cut(client, unsent, 'maxPushBytes');
    else if (unsent > this.#softLimit) {
      const now = performance.now();
      if (client.softSince < 0) client.softSince = now;
      if (now - client.softSince >= this.#softMs) this.#cut(client, unsent, 'pushSoftLimit');
    } else client.softSince = -1;
    return true;
  }

  #cut(client: Client, unsent: number, limit: string): void {
    client.cut = true;
    this.#pushDisconnects++;
    this.#overflows.hit({ client: client.member.clientAddress.join(':'), clientId: client.id, unsentBytes: unsent, limit });
    client.member.destroy();
  }

  #remove(room: string, client: Client): void {
    const members = this.#rooms.get(room);
    if (members === undefined || !members.delete(client)) return;
    this.#memberships--;
    if (members.size === 0) this.#rooms.delete(room);
  }

  #refused(): SockservError {
    if (!this.#refusalLogged) {
      this.#refusalLogged = true;
      this.#logger.error({ code: this.#refusal!.code }, this.#refusal!.message);
    }
    return this.#refusal!;
  }

  #tooBig(bytes: number): SockservError {
    return new SockservError(ErrorCodes.FRAME_TOO_LONG, `a message of ${bytes} bytes exceeds maxPushBytes (${this.#maxPushBytes})`);
  }
}

/** A call's outcome as the promise a handler awaits; a thrown argument error rejects it too. */
function settle(call: () => SockservError | null | Promise<SockservError | null>): Promise<void> {
  try {
    const outcome = call();
    if (outcome === null) return RESOLVED;
    if (outcome instanceof SockservError) return Promise.reject(outcome);
    return outcome.then((error) => (error === null ? undefined : Promise.reject(error)));
  } catch (error) {
    return Promise.reject(error);
  }
}

function asError(error: unknown): SockservError {
  return error instanceof SockservError ? error : new SockservError(ErrorCodes.PUBSUB_UNAVAILABLE, String((error as Error)?.message ?? error));
}
