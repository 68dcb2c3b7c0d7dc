// Owns the protocol of one worker channel: the shared words both threads read and write, the
// record kinds that travel in its two rings, what each header word means, and the sizes. The main
// thread (worker-channel.ts and the files it composes) and the worker (workers/channel-loop.ts and
// its parts) import only this, ring.ts and doorbell.ts, so the two sides cannot drift apart.
//
// Invariants stated here, held by both sides:
//   - A slot reference (`ref`) is a slot number and a generation (refOf). Every record that names
//     a request carries its ref, in both directions; a record whose generation is not the slot's
//     current one is stale and ignored. A slot number alone never identifies a request.
//   - A record's header is (length, kind, slot word, conn word) in both directions: the slot word
//     is a ref (0 for records without one), the conn word a connection or session number — or,
//     in an outcome, the handler's run time in µs. ROOM and ROOM_ACK records (a handler's room
//     calls, src/rooms/records.ts) carry a call number in the slot word, never a ref: they free
//     no slot.
//   - A connection's client id (its name in rooms) reaches the worker with its address: in the
//     PEER record before its first request there, in SESSION_OPEN for a session (peerPayload).
//   - `states[slot]` is written −ref (queued, for that ref) by the main thread before the request
//     is published. The worker starts a request by compare-exchanging −ref → ref (STARTED); the
//     main thread may revoke a request not yet started by compare-exchanging −ref → REVOKED. One
//     of the two wins: a revoked request never runs here (the worker drops it, no outcome), and a
//     started one is never revoked. A stale queue entry (its slot reused) finds another −ref and is
//     dropped too.
//
//   control  Int32Array: ring positions, doorbells and sleep flags, progress counters, thread id
//   states   Int32Array: per slot, 0 (queued) or the ref of the request that started there
//   started  Float64Array: per slot, the epoch ms its request started (the requestTimeout watchdog)
//   meters   Float64Array: the worker's own time accounts (Meter), written by the worker only
//   request  ring main → worker: REQUEST / PEER / ABANDON / ROOM_ACK records, and sessions' SESSION_* records
//   reply    ring worker → main: REPLY / NO_REPLY / ERROR / ROOM records, and sessions' SESSION_* records
// Payloads too big for a ring record travel as transferred buffers on the channel's MessagePort,
// announced in order by a record with the BIG flag; that slower path is never an error.

/** Indices into the control words. */
export const Ctl = {
  /** Request ring: where the main thread has published up to, and where the worker has read up to. */
  REQ_WRITE: 0,
  REQ_READ: 1,
  /** Reply ring: the worker's published end, the main thread's read position. */
  REP_WRITE: 2,
  REP_READ: 3,
  /** 1 while the worker waits on REQ_BELL (doorbell.ts). */
  WORKER_SLEEPING: 4,
  /** 1 while the main thread waits on REP_BELL. */
  MAIN_SLEEPING: 5,
  /** Requests whose synchronous part has finished (the worker's CPU is free of them). */
  SYNC_DONE: 6,
  /** Microseconds of handler CPU time so far (wraps at 2^31; read as a difference). */
  BUSY_MICROS: 7,
  /** The ref whose handler is running synchronously now, or 0: the watchdog stops only a stuck thread. */
  RUNNING: 8,
  /** The worker's threadId, written when its loop starts (to stop that thread). */
  THREAD_ID: 9,
  /** Set by the main thread to end the loop (server closing); it rings REQ_BELL after. */
  CLOSE: 10,
  /** Doorbells: bumped by a waker that saw the other side's sleep flag set; the sleeper waits on it. */
  REQ_BELL: 11,
  REP_BELL: 12,
  /** Waits that ran out their WAKE_CHECK_MS and then found work: a wake the protocol lost (tests expect 0). */
  MISSED_WAKES: 13,
  /** Times the worker rang the main thread, and the main thread the worker (cost accounting). */
  WAKES_TO_MAIN: 14,
  WAKES_TO_WORKER: 15,
  /** 1 once the worker's loop has loaded the handler and started: from then on the main thread sends requests. */
  OPEN: 16,
  /** The worker's OS thread id (Linux; 0 elsewhere): where a benchmark reads its CPU time. */
  OS_TID: 17,
  /** The last PING the worker's loop answered (the watchdog's liveness check of the thread's event loop). */
  PONG: 18,
  /** The channel's largest ring record payload (ChannelSizes.maxRecordBytes), written at allocation: both sides read it here. */
  MAX_RECORD: 19,
  /** 1 while the worker holds the wake for published outcomes (workers/outcome-writer.ts): a wait that times out then is not a lost wake. */
  HOLDING: 20,
} as const;
const CONTROL_WORDS = 32;

/** Indices into the meters: milliseconds the worker's loop spent running handlers, and asleep with nothing to run. */
export const Meter = {
  BUSY_MS: 0,
  IDLE_MS: 1,
} as const;
const METERS = 2;

/** Record kinds. */
export const Kind = {
  /** main → worker: run the request in the record (or, with BIG, in the next port message). */
  REQUEST: 1,
  /** main → worker: the client address and client id of connection `conn` (peerPayload), sent before its first request. */
  PEER: 2,
  /** main → worker: the watchdog failed request `ref` while its async handler awaited: let its connection go on. */
  ABANDON: 7,
  /** main → worker: are you turning? The loop answers by storing the record's slot word in Ctl.PONG (watchdog.ts). */
  PING: 13,
  /** main → worker: start a session (StreamRequestHandler) numbered `conn`; the payload is its client address and id (peerPayload). */
  SESSION_OPEN: 8,
  /** Either way: bytes of session `conn` (main → worker) or `slot` (worker → main), raw. */
  SESSION_DATA: 9,
  /** Either way: any other session message, as JSON (session-port.ts). */
  SESSION_CTRL: 10,
  /** worker → main: the reply bytes of `ref`. (Every outcome's conn word carries the handler's run time in µs.) */
  REPLY: 4,
  /** worker → main: `ref` finished with nothing to send (also the acknowledgement of an ABANDON). */
  NO_REPLY: 5,
  /** worker → main: `ref` failed; the payload is its ErrorInfo as JSON. */
  ERROR: 6,
  /** worker → main: a handler's room call (join, leave, broadcast, sendTo), in order with the outcomes; slot word: its call number, conn word: the operation (src/rooms/records.ts). */
  ROOM: 11,
  /** main → worker: the answer to room call `slot` (conn word 0: done, 1: failed, the payload its error). */
  ROOM_ACK: 12,
} as const;

/** Or-ed into a kind: the payload is the next message on the channel's port (a transferred buffer). */
export const BIG = 0x100;
/** Or-ed into REQUEST: the connection's requests may run in parallel (no per-connection order in the worker). */
export const UNORDERED = 0x200;
/** Or-ed into REQUEST: predicted cheap — the worker runs it before queued requests of other connections. */
export const URGENT = 0x400;
/**
 * Or-ed into REQUEST: predicted to run under SHORT_RUN_MS. A worker may hold a finished heavy
 * outcome's wake over such a run (workers/outcome-writer.ts), never over one not flagged.
 */
export const SHORT = 0x800;
/** Below this prediction (ms) a request is SHORT. */
export const SHORT_RUN_MS = 1;
/** A worker holds a wake only with at least this many requests behind the run it holds it over. */
export const HOLD_QUEUED = 2;
/**
 * While a channel carries enough requests for its worker to hold a wake (HOLD_QUEUED behind the
 * next run, and the one finished), the main thread reads its rings itself at least this often (ms):
 * a run that overruns its SHORT prediction delays a held reply by at most this, not by the run.
 */
export const HOLD_CHECK_MS = 4;
export const KIND_MASK = 0xff;

/**
 * Slot numbers take the low SLOT_BITS of a ref; the generation the bits above, up to bit 30 — a
 * ref is a positive int32, so it reads back equal from the Int32Array words it is stored in
 * (states, RUNNING) — and never 0, so no ref is 0.
 */
export const SLOT_BITS = 13;
const SLOT_MASK = (1 << SLOT_BITS) - 1;
const GENERATIONS = 2 ** (31 - SLOT_BITS);

/** The ref of generation `generation` (1 … 2^18 − 1) of `slot`: 1 … 2^31 − 1. */
export function refOf(slot: number, generation: number): number {
  return (generation << SLOT_BITS) | slot;
}

export function slotOf(ref: number): number {
  return ref & SLOT_MASK;
}

/** The generation after `generation`, skipping 0. */
export function nextGeneration(generation: number): number {
  const next = (generation + 1) % GENERATIONS;
  return next === 0 ? 1 : next;
}

/** `states[slot]` of a request written and not started: the negated ref. */
export function queuedState(ref: number): number {
  return -ref;
}

/** `states[slot]` of a request the main thread took back before it started (or a free slot). */
export const REVOKED = 0;

/**
 * Longest wait of either side without looking at its ring, wake or no wake: the safety net under
 * the doorbell (doorbell.ts), which by its protocol never misses a wake (MISSED_WAKES counts any).
 */
export const WAKE_CHECK_MS = 50;

/** The payload of PEER and SESSION_OPEN: a connection's address and client id, as JSON `[host, port, clientId]`. */
export function peerPayload(address: readonly [string, number], clientId: string): Buffer {
  return Buffer.from(JSON.stringify([address[0], address[1], clientId]));
}

/** Reads peerPayload's JSON: the address (as handlers see it) and the client id ('' if absent). */
export function readPeer(json: string): { address: readonly [string, number]; clientId: string } {
  const [host, port, clientId] = JSON.parse(json) as [string, number, string?];
  return { address: [host, port], clientId: clientId ?? '' };
}

/** Peers a worker remembers per channel; the oldest is forgotten first, mirrored by the main thread. */
export const PEER_CACHE = 4096;

/** Sizes of one channel. */
export interface ChannelSizes {
  /** Bytes of each ring. */
  ringBytes: number;
  /** Requests a channel can have outstanding (queued, running or awaiting) at once (≤ 2^SLOT_BITS). */
  slots: number;
  /** Largest payload carried in a ring record; bigger ones are transferred. */
  maxRecordBytes: number;
}

export const CHANNEL_SIZES: ChannelSizes = Object.freeze({
  ringBytes: 1 << 20,
  slots: 1 << SLOT_BITS,
  maxRecordBytes: 64 * 1024,
});

/** The shared buffers of one channel, as they cross to the worker. */
export interface ChannelBuffers {
  control: SharedArrayBuffer;
  states: SharedArrayBuffer;
  started: SharedArrayBuffer;
  meters: SharedArrayBuffer;
  request: SharedArrayBuffer;
  reply: SharedArrayBuffer;
}

export function allocateChannel(sizes: ChannelSizes = CHANNEL_SIZES): ChannelBuffers {
  if (sizes.slots > 1 << SLOT_BITS) throw new RangeError(`a channel has at most ${1 << SLOT_BITS} slots`);
  // A record must always fit an empty ring, or its writer would wait for room for ever.
  if (sizes.maxRecordBytes > sizes.ringBytes / 4) throw new RangeError('a channel record must be at most a quarter of its ring');
  const control = new SharedArrayBuffer(CONTROL_WORDS * 4);
  new Int32Array(control)[Ctl.MAX_RECORD] = sizes.maxRecordBytes;
  return {
    control,
    states: new SharedArrayBuffer(sizes.slots * 4),
    started: new SharedArrayBuffer(sizes.slots * 8),
    meters: new SharedArrayBuffer(METERS * 8),
    request: new SharedArrayBuffer(sizes.ringBytes),
    reply: new SharedArrayBuffer(sizes.ringBytes),
  };
}
