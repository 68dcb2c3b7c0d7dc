// Owns the pool's scheduling policy: which request goes to which worker's channel, and when.
// Pure policy — no Atomics, no timers: the dispatcher (pool-dispatcher.ts) calls serve() when a
// channel may have room, and writes what it chose.
//
//   - One connection's requests run in order (Python's ThreadingTCPServer, Netty's channel per
//     executor): while a connection has requests on a channel, its next ones go to that same
//     channel, which runs them in sequence. Parallelism comes from many connections;
//     `pipelining: 'parallel'` lets a stateless handler's pipelined requests spread.
//   - Costs are learned per command (request-costs.ts). Requests predicted cheap (urgent) go first:
//     here, and in the worker between two runs — there for at most 10 ms past an older request
//     (workers/run-queue.ts, aging: a stream of cheap ones must not starve it). Heavy requests are metered: each channel gets about
//     `workerQueueMs` of predicted work, and at least MIN_HEAVY requests so it never idles for a
//     round trip to this thread; least loaded first. The rest wait here, round-robin across
//     connections, a QUANTUM_MS of work per visit, so one client cannot queue ahead of everyone.
//
// Invariants: each request is in exactly one place — a connection's pending FIFO, or a channel's
// slot. An ordered connection with requests outstanding sends only to its own channel (if that is
// full it parks there; it never spills elsewhere). A connection with an inline run outstanding
// (inline-lane.ts) sends nothing to the pool until it ends. No channel with room is passed over
// while a request that may go there waits: serve() stops only when no channel takes the next one,
// and steal() takes requests back from a worker held by a long run when another has none queued.
// A request taken back never ran (the worker's start and the revoke are one compare-exchange) and
// rejoins its connection's pending requests in order, ahead of its later ones.
// The bulkhead: a request whose kind killed a worker recently (suspects.ts) is sent only while
// fewer suspect requests than the open workers but one are outstanding on the serving channels —
// one, if no replacement is booting and one worker is open — one at a time per connection, and
// only to a channel holding no other suspect and none of another connection's requests if any
// such has room (an empty one first); while it is outstanding there no other connection's request
// is sent to that channel, and steal() does not move requests onto it. So clients whose requests
// kill workers hold at most all workers but one, and the requests of others neither queue behind
// theirs nor die with them. A connection whose next request is suspect and over the limit is held
// back; one bound to a channel it would share waits parked there until its own requests are
// answered. Every serve() judges the held-back ones again once a place is free or a kind stopped
// being suspect (cleared, expired: the dispatcher flushes at the next expiry while any is held
// back), and drops closed ones — what ends every wait here. Places free as suspects settle, and
// every open, loss or boot timeout of a channel flushes. A suspect that never settles (no
// requestTimeout) holds its place, as it would hold its worker without the bulkhead.
// A reload's old channels are draining (worker-channel.ts), never `accepting`: serve() is given
// only the serving version's channels, and a connection bound to a draining one parks there until
// its requests on it are answered — then its next request goes to the new version.

import { peerPayload } from './channel-protocol.js';
import type { RequestSink } from './dispatcher.js';
import { Fifo } from './fifo.js';
import { RequestCosts } from './request-costs.js';
import type { SlotEntry } from './slot-table.js';
import { Suspects } from './suspects.js';
import type { WorkerChannel } from './worker-channel.js';

/** A channel always holds this many heavy requests when there are any, so its worker never idles for a round trip. */
const MIN_HEAVY = 2;
/** Worker time one connection may claim per visit of the round-robin. */
const QUANTUM_MS = 0.25;
/** A request predicted below this costs too little to measure the quantum by: each counts as this much. */
const MIN_QUANTUM_SHARE_MS = 0.001;
/** Requests predicted to run shorter than this are urgent: they go ahead of heavy ones. */
const URGENT_BELOW_MS = 0.1;
/** Urgent requests a worker may have queued (they are cheap; this only bounds a flood). */
const URGENT_QUEUE = 1024;
/** Heavy load is compared first; among equally loaded channels the one with fewer queued wins (a tie-breaker far below any real cost). */
const QUEUED_TIE_BREAK_MS = 1e-6;
/** A run that has held its worker this long lets another worker with nothing queued take the requests waiting behind it. */
const STEAL_AFTER_MS = 1;
/** For urgent requests the count comes first; heavy work (ms) breaks ties (far below one request). */
const URGENT_WORK_TIE_BREAK = 1e-6;
/** A suspect request avoids a channel with anything outstanding while an empty one has room: it may kill what runs beside it. */
const BUSY_FOR_SUSPECT = 1e9;

type Channel = WorkerChannel<ConnQueue>;
export type Entry = SlotEntry<ConnQueue>;

/** A connection as the scheduler sees it. */
export interface ConnQueue {
  /** Names the connection in its channel records (the worker orders and addresses by it). */
  readonly id: number;
  readonly sink: RequestSink;
  /** Requests not yet written to a channel, oldest first. */
  readonly pending: Fifo<Entry>;
  /** In a lane (has pending requests and may send them). */
  ready: boolean;
  /** Waiting for room on `channel` (its requests there must stay on it to keep their order). */
  parked: boolean;
  /** Requests written to channels whose outcome has not come back. */
  outstanding: number;
  /** The channel holding them: while `outstanding` > 0, in order, the next go there too. */
  channel: Channel | null;
  /** The channel that last ran this connection's requests, and the PEER number that introduced it there. */
  peerOf: Channel | null;
  peerNumber: number;
  /** Requests of this connection running on the main thread (the inline lane). */
  inline: number;
  /** Waiting for its inline runs to end before its pending requests may go to the pool. */
  inlineWait: boolean;
  /** Its suspect requests outstanding (the bulkhead; at most one at a time), and the channel holding them. */
  suspects: number;
  suspectOn: Channel | null;
}

export class Scheduler {
  readonly #ordered: boolean;
  readonly #workerQueueMs: number;
  readonly costs: RequestCosts;
  /** Kinds that killed a worker recently (the bulkhead). */
  readonly suspects = new Suspects();
  readonly #conns = new WeakMap<RequestSink, ConnQueue>();
  readonly #urgentLane = new Fifo<ConnQueue>();
  readonly #heavyLane = new Fifo<ConnQueue>();
  /** Per channel index: connections waiting for room on that channel. */
  readonly #parked = new Map<number, ConnQueue[]>();
  #nextConnId = 0;
  /** Requests waiting here (not yet written to a channel). */
  #queued = 0;
  /** Suspect requests outstanding on the serving channels, and how many may be (serve() sets both from the channels). */
  #suspectsOut = 0;
  #suspectLimit = 1;
  /** Date.now() for this serve() while any kind is suspect (suspicion is judged once per pass), else 0. */
  #now = 0;
  /**
   * Connections the bulkhead holds back (marked parked). #releaseHeldBack puts them back on their
   * lanes; putBack (a revoke, a lost channel) may requeue one first — the `ready` flag keeps it in
   * one lane, and a stale entry here is then harmless.
   */
  #heldBack: ConnQueue[] = [];
  /** suspects.changes when the last connection was held back: a change since may free it. */
  #heldAtChanges = 0;

  constructor(ordered: boolean, workerQueueMs: number) {
    this.#ordered = ordered;
    this.#workerQueueMs = workerQueueMs;
    this.costs = new RequestCosts(workerQueueMs);
  }

  get ordered(): boolean {
    return this.#ordered;
  }

  /** Requests waiting here for a channel. */
  get queued(): number {
    return this.#queued;
  }

  connOf(sink: RequestSink): ConnQueue {
    let conn = this.#conns.get(sink);
    if (conn === undefined) {
      conn = {
        id: (this.#nextConnId = (this.#nextConnId + 1) >>> 0),
        sink,
        pending: new Fifo<Entry>(),
        ready: false,
        parked: false,
        outstanding: 0,
        channel: null,
        peerOf: null,
        peerNumber: 0,
        inline: 0,
        inlineWait: false,
        suspects: 0,
        suspectOn: null,
      };
      this.#conns.set(sink, conn);
    }
    return conn;
  }

  /** Nothing of this connection is anywhere in the pool (the inline lane may take its next request). */
  idle(conn: ConnQueue): boolean {
    return conn.outstanding === 0 && conn.pending.empty;
  }

  /** Queues request `seq` of `conn`. */
  enqueue(conn: ConnQueue, seq: number, request: Buffer): void {
    conn.pending.push({ conn, seq, request, ref: 0, abandoned: false, key: this.costs.keyOf(request), est: 0, urgent: false, suspect: false, suspectEpoch: 0 }); // every field set here: one shape for every entry
    this.#queued++;
    if (!conn.ready && !conn.parked && !conn.inlineWait) this.#requeue(conn);
  }

  /**
   * An outcome of `entry` came back (or its channel was lost): it is no longer outstanding.
   * `completed`: its handler ran to an end (a reply, no reply, or its error) — a suspect kind that
   * completes is trusted again.
   */
  settled(entry: Entry, completed: boolean): void {
    const conn = entry.conn;
    if (--conn.outstanding === 0) conn.channel = null;
    if (entry.suspect) {
      if (completed) this.suspects.clear(entry.key, entry.suspectEpoch ?? -1);
      this.#suspectSettled(conn);
    }
  }

  #suspectSettled(conn: ConnQueue): void {
    if (--conn.suspects === 0) conn.suspectOn = null;
  }

  /** `entry` killed its worker at `now` (Date.now()): its kind is suspect. */
  blame(entry: Entry, now: number): void {
    this.suspects.mark(entry.key, now);
  }

  /** Whether `request` is of a suspect kind now (the inline lane asks before running one on the main thread). */
  suspectRequest(request: Buffer): boolean {
    if (this.suspects.size === 0) return false;
    const now = Date.now();
    return this.suspects.any(now) && this.suspects.has(this.costs.keyOf(request), now);
  }

  /** Date.now() at which a held-back connection may be freed by an expiry, or 0 if none is held back. */
  get heldBackUntil(): number {
    return this.#heldBack.length > 0 && this.suspects.nextExpiry !== Infinity ? this.suspects.nextExpiry : 0;
  }

  /** Puts the held-back connections back on their lanes (serve() holds again those that must still wait); drops closed ones. */
  #releaseHeldBack(): void {
    const held = this.#heldBack;
    this.#heldBack = [];
    for (const conn of held) {
      conn.parked = false;
      if (conn.sink.closed) this.#dropPending(conn);
      else if (!conn.pending.empty && !conn.ready && !conn.inlineWait) this.#requeue(conn);
    }
  }

  #holdBack(conn: ConnQueue): void {
    conn.ready = false;
    conn.parked = true;
    this.#heldBack.push(conn);
    this.#heldAtChanges = this.suspects.changes;
  }

  /** The last inline run of `conn` ended: its pending requests may go to the pool. */
  inlineEnded(conn: ConnQueue): void {
    if (conn.inline > 0 || !conn.inlineWait) return;
    conn.inlineWait = false;
    if (!conn.pending.empty && !conn.ready) this.#requeue(conn);
  }

  /** Sends what the channels have room for: urgent requests first, then heavy ones, round-robin. */
  serve(channels: readonly Channel[]): void {
    const now = this.#heldBack.length > 0 || this.suspects.size > 0 ? Date.now() : 0;
    this.#now = now !== 0 && this.suspects.any(now) ? now : 0;
    if (this.#now !== 0) {
      let open = 0;
      let booting = 0;
      let out = 0;
      for (const channel of channels) {
        out += channel.suspects;
        if (channel.open) open++;
        else if (channel.phase === 'opening') booting++;
      }
      this.#suspectsOut = out;
      // All open workers but one; with one open and no replacement booting (a single worker, or
      // the others lost for good) none would be kept free for ever, so one may run.
      this.#suspectLimit = booting > 0 ? open - 1 : Math.max(1, open - 1);
    }
    if (this.#heldBack.length > 0 && (this.#now === 0 || this.#suspectsOut < this.#suspectLimit || this.suspects.changes !== this.#heldAtChanges)) this.#releaseHeldBack();
    this.#serveLane(this.#urgentLane, true, channels);
    this.#serveLane(this.#heavyLane, false, channels);
    if (!this.#urgentLane.empty) this.#serveLane(this.#urgentLane, true, channels); // connections whose next request turned out cheap
  }

  /**
   * Moves requests that wait behind a run older than STEAL_AFTER_MS to an open channel with
   * nothing queued: they are taken back (only those not started) and served again. An ordered
   * connection's requests move only if none of them has started there (they must stay in order).
   * `now`: Date.now(). True if anything moved (serve() then places it).
   */
  steal(channels: readonly Channel[], now: () => number): boolean {
    if (!channels.some((c) => c.accepting && c.queued === 0 && c.suspects === 0)) return false; // #pick sends nothing of another connection beside a suspect
    let moved = false;
    let at = 0;
    for (const channel of channels) {
      if (!channel.open) continue;
      const since = channel.runningSince;
      if (since === 0 || (at ||= now()) - since < STEAL_AFTER_MS) continue;
      const byConn = new Map<ConnQueue, Entry[]>();
      for (const entry of channel.waitingEntries()) {
        let list = byConn.get(entry.conn);
        if (list === undefined) byConn.set(entry.conn, (list = []));
        list.push(entry);
      }
      for (const [conn, list] of byConn) {
        if (conn.sink.closed || (this.#ordered && list.length !== conn.outstanding)) continue;
        list.sort((a, b) => a.seq - b.seq);
        const revoked = channel.revoke(list);
        if (revoked === 0) continue;
        conn.outstanding -= revoked;
        const back = list.slice(list.length - revoked);
        for (const entry of back) if (entry.suspect) this.#suspectSettled(conn);
        if (conn.outstanding === 0) conn.channel = null;
        this.putBack(conn, back); // still bound if some started: back to the same channel, in order
        moved = true;
      }
    }
    return moved;
  }

  /** Connections parked on channel `index` may try again. */
  unpark(index: number): void {
    const parked = this.#parked.get(index);
    if (parked === undefined || parked.length === 0) return;
    this.#parked.set(index, []);
    for (const conn of parked) {
      conn.parked = false;
      if (!conn.pending.empty && !conn.ready && !conn.inlineWait) this.#requeue(conn);
    }
  }

  /** Requests a lost channel never started go back to the front of their connections, in order. */
  putBack(conn: ConnQueue, entries: Entry[]): void {
    if (entries.length === 0) return;
    for (const entry of entries) entry.ref = 0;
    conn.pending.prepend(entries);
    this.#queued += entries.length;
    if (!conn.ready && !conn.inlineWait) {
      conn.parked = false;
      this.#requeue(conn);
    }
  }

  /** Removes and returns every waiting request (no channel can ever run them). */
  takeAll(): Entry[] {
    const all: Entry[] = [];
    const conns = new Set<ConnQueue>([...this.#urgentLane.drainAll(), ...this.#heavyLane.drainAll(), ...this.#heldBack.splice(0)]);
    for (const list of this.#parked.values()) for (const conn of list.splice(0)) conns.add(conn);
    for (const conn of conns) {
      conn.ready = false;
      conn.parked = false;
      all.push(...conn.pending.drainAll());
    }
    // Connections waiting on inline runs hold requests too; they are found through their entries' sinks later.
    this.#queued -= all.length;
    return all;
  }

  /** Drops a closed connection's waiting requests. */
  #dropPending(conn: ConnQueue): void {
    conn.ready = false;
    this.#queued -= conn.pending.drainAll().length;
  }

  #serveLane(lane: Fifo<ConnQueue>, urgent: boolean, channels: readonly Channel[]): void {
    // Until no channel takes the lane's next request. Each visit sends, or moves the connection out
    // of this lane (parked, the other lane, dropped), or leaves its channel not accepting: it ends.
    while (!lane.empty) {
      const conn = lane.peek()!;
      if (conn.sink.closed) {
        lane.shift();
        this.#dropPending(conn);
        continue;
      }
      if (conn.inline > 0) {
        lane.shift();
        conn.ready = false;
        conn.inlineWait = true; // inlineEnded() puts it back
        continue;
      }
      const next = conn.pending.peek()!;
      const est = urgent ? 0 : this.costs.estimate(next.key);
      const suspect = this.#isSuspect(next);
      const bound = this.#ordered && conn.outstanding > 0 ? conn.channel : null;
      if (suspect && this.#suspectsOut >= this.#suspectLimit) {
        lane.shift();
        this.#holdBack(conn); // serve() puts it back
        continue;
      }
      // Parked until the requests it waits for are answered (each drain of that channel unparks):
      // a suspect waits for its connection's earlier suspect (one at a time, also unordered) and,
      // bound, for its own requests where others' run (then #pick places it apart); any request
      // bound to a channel where another connection's suspect runs waits for its own there, then
      // goes elsewhere — nothing joins a suspect but its own connection's requests.
      const waitOn =
        suspect && conn.suspects > 0
          ? conn.suspectOn
          : bound !== null && (bound.suspects > conn.suspects || (suspect && bound.used > conn.outstanding))
            ? bound
            : null;
      if (waitOn !== null) {
        lane.shift();
        conn.ready = false;
        this.#park(conn, waitOn);
        continue;
      }
      const channel = bound ?? this.#pick(conn, urgent, est, suspect, channels);
      if (channel === null) return; // no channel takes the next one: a reply or room flushes again
      lane.shift();
      conn.ready = false;
      if (!this.#sendRun(conn, channel, urgent, suspect)) {
        if (bound !== null || !channel.accepting) this.#park(conn, channel);
        else this.#requeue(conn);
      } else if (!conn.pending.empty) {
        this.#requeue(conn); // its quantum is spent, or its next request is of the other class
      }
    }
  }

  /**
   * Writes the connection's next requests of this class (urgent or not, suspect or not) to
   * `channel`, up to its quantum and the channel's room — a suspect one alone; false if the room
   * ran out first.
   */
  #sendRun(conn: ConnQueue, channel: Channel, urgent: boolean, suspect: boolean): boolean {
    let spent = 0;
    while (!conn.pending.empty && spent < QUANTUM_MS) {
      const entry = conn.pending.peek()!;
      const est = this.costs.estimate(entry.key);
      if (est < URGENT_BELOW_MS !== urgent) break; // the next one belongs to the other lane
      if (this.#isSuspect(entry) !== suspect) break; // a suspect goes where #pick chose for one, and nothing else follows it there
      if (!this.#hasRoom(channel, urgent, est) || !this.#introduce(conn, channel)) return false;
      entry.est = est;
      entry.urgent = urgent;
      entry.suspect = suspect; // the channel counts it (WorkerChannel.suspects) until its slot is freed
      if (!channel.send(entry, conn.id, this.#ordered)) return false;
      if (suspect) {
        entry.suspectEpoch = this.suspects.epoch;
        conn.suspects++;
        conn.suspectOn = channel;
      }
      conn.pending.shift();
      this.#queued--;
      conn.outstanding++;
      conn.channel = channel;
      spent += Math.max(est, MIN_QUANTUM_SHARE_MS);
      if (suspect) {
        this.#suspectsOut++;
        break; // one at a time: its connection's next one waits for it (bound) or takes another place
      }
    }
    return true;
  }

  /** A channel may take one more request of this class (urgent, or heavy predicted at `est` ms). */
  #hasRoom(channel: Channel, urgent: boolean, est: number): boolean {
    if (!channel.accepting) return false;
    if (urgent) return channel.queued < URGENT_QUEUE;
    return channel.heavy < MIN_HEAVY || channel.work + est <= this.#workerQueueMs;
  }

  /**
   * The least loaded channel with room; the connection's last one when it is as lightly loaded
   * (its worker knows the peer). An urgent request goes where the fewest requests wait to run —
   * a worker stuck in a long run has one waiting for ever, so a cheap request avoids it — and
   * heavy work breaks ties; a heavy one goes where the least heavy work waits. Never a channel
   * holding a suspect request; a suspect one goes to a channel with nothing outstanding if any has
   * room (the bulkhead).
   */
  #pick(conn: ConnQueue, urgent: boolean, est: number, suspect: boolean, channels: readonly Channel[]): Channel | null {
    let best: Channel | null = null;
    let least = Infinity;
    for (const channel of channels) {
      if (channel.suspects > 0 || !this.#hasRoom(channel, urgent, est)) continue;
      const load = this.#load(channel, urgent) + (suspect && channel.used > 0 ? BUSY_FOR_SUSPECT : 0);
      if (load < least) {
        least = load;
        best = channel;
      }
    }
    const last = conn.peerOf;
    if (best === null || last === null || last === best || last.suspects > 0) return best;
    const lastLoad = this.#load(last, urgent) + (suspect && last.used > 0 ? BUSY_FOR_SUSPECT : 0);
    return lastLoad <= least && this.#hasRoom(last, urgent, est) && channels.includes(last) ? last : best;
  }

  /** Whether `entry`'s kind is suspect in this serve() pass. */
  #isSuspect(entry: Entry): boolean {
    return this.#now !== 0 && this.suspects.has(entry.key, this.#now);
  }

  #load(channel: Channel, urgent: boolean): number {
    return urgent ? channel.queued + channel.work * URGENT_WORK_TIE_BREAK : channel.work + channel.queued * QUEUED_TIE_BREAK_MS;
  }

  /** Makes sure the channel's worker knows the connection's address (a PEER record before its first request there). */
  #introduce(conn: ConnQueue, channel: Channel): boolean {
    if (conn.peerOf === channel && channel.knowsPeer(conn.peerNumber)) return true;
    const number = channel.introduce(conn.id, peerPayload(conn.sink.clientAddress, conn.sink.clientId ?? ''));
    if (number === 0) return false;
    conn.peerOf = channel;
    conn.peerNumber = number;
    return true;
  }

  /** Puts the connection at the back of the lane of its next request's class. */
  #requeue(conn: ConnQueue): void {
    conn.ready = true;
    const next = conn.pending.peek()!;
    (this.costs.estimate(next.key) < URGENT_BELOW_MS ? this.#urgentLane : this.#heavyLane).push(conn);
  }

  #park(conn: ConnQueue, channel: Channel): void {
    conn.parked = true;
    let list = this.#parked.get(channel.index);
    if (list === undefined) this.#parked.set(channel.index, (list = []));
    list.push(conn);
  }
}
