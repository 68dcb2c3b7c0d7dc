// Owns the shared-memory layout of one worker channel: the words both threads read and write,
// the record kinds that travel in its two rings, and the per-request state table. The main thread
// (worker-channel.ts) and the worker (workers/channel-loop.ts) import only this and ring.ts, so
// the two sides of the protocol cannot drift apart.
//
//   control  Int32Array: positions of both rings, who sleeps, progress counters, the thread id
//   states   Uint8Array:  per slot, queued → started (the worker began it); done is its reply
//   started  Float64Array: per slot, Date.now() when it started (the requestTimeout watchdog)
//   request  ring main → worker: REQUEST / PEER / ABANDON records, and sessions' SESSION_* records
//   reply    ring worker → main: REPLY / NO_REPLY / ERROR records, and sessions' SESSION_* records
// Frames too big for a ring record travel as transferred buffers on the channel's MessagePort,
// announced by a record in order (the BIG flag); that slower path is never an error.

/** Indices into the control words. */
export const Ctl = {
  /** Request ring: where the main thread has published up to, and where the worker has read up to. */
  REQ_WRITE: 0,
  REQ_READ: 1,
  /** Reply ring: the worker's published end, the main thread's read position. */
  REP_WRITE: 2,
  REP_READ: 3,
  /** 1 while the worker waits for requests: the main thread notifies REQ_WRITE after publishing. */
  WORKER_SLEEPING: 4,
  /** 1 while the main thread waits for replies: the worker notifies REP_WRITE after publishing. */
  MAIN_SLEEPING: 5,
  /** Requests whose synchronous part has finished (the worker's CPU is free of them). */
  SYNC_DONE: 6,
  /** Microseconds of handler CPU time so far (wraps at 2^31; read as a difference). */
  BUSY_MICROS: 7,
  /** The slot whose handler is running synchronously now, or -1: the watchdog stops only a stuck thread. */
  RUNNING: 8,
  /** The worker's threadId, written when its loop starts (to stop that thread). */
  THREAD_ID: 9,
  /** Set by the main thread to end the loop (server closing). */
  CLOSE: 10,
} as const;
const CONTROL_WORDS = 16;

/** Record kinds. */
export const Kind = {
  /** main → worker: run the request in the record (or, with BIG, in the next port message). */
  REQUEST: 1,
  /** main → worker: the client address of connection `conn` (JSON), sent before its first request. */
  PEER: 2,
  /** main → worker: the watchdog failed `slot` while its async handler awaited: let its connection go on. */
  ABANDON: 7,
  /** main → worker: start a session (StreamRequestHandler) numbered `conn`; the payload is its client address (JSON). */
  SESSION_OPEN: 8,
  /** Either way: bytes of session `conn` (main → worker) or `slot` (worker → main), raw. */
  SESSION_DATA: 9,
  /** Either way: any other session message, as JSON (session-port.ts). */
  SESSION_CTRL: 10,
  /** worker → main: the reply bytes of `slot`. (Every outcome's `conn` word carries the handler's run time in µs.) */
  REPLY: 4,
  /** worker → main: `slot` finished with nothing to send. */
  NO_REPLY: 5,
  /** worker → main: `slot` failed; the payload is its ErrorInfo as JSON. */
  ERROR: 6,
} as const;

/** Or-ed into a kind: the payload is the next message on the channel's port (a transferred buffer). */
export const BIG = 0x100;
/** Or-ed into REQUEST: the connection's requests may run in parallel (no per-connection order in the worker). */
export const UNORDERED = 0x200;
/** Or-ed into REQUEST: predicted cheap — the worker runs it before queued requests of other connections. */
export const URGENT = 0x400;
export const KIND_MASK = 0xff;

/** Slot states. */
export const SlotState = { QUEUED: 0, STARTED: 1 } as const;

/** Sizes of one channel. */
export interface ChannelSizes {
  /** Bytes of each ring. */
  ringBytes: number;
  /** Requests a channel can have outstanding (queued, running or awaiting) at once. */
  slots: number;
  /** Largest payload carried in a ring record; bigger ones are transferred. */
  maxRecordBytes: number;
}

export const CHANNEL_SIZES: ChannelSizes = Object.freeze({
  ringBytes: 1 << 20,
  slots: 8192,
  maxRecordBytes: 64 * 1024,
});

/** The shared buffers of one channel, as they cross to the worker. */
export interface ChannelBuffers {
  control: SharedArrayBuffer;
  states: SharedArrayBuffer;
  started: SharedArrayBuffer;
  request: SharedArrayBuffer;
  reply: SharedArrayBuffer;
}

export function allocateChannel(sizes: ChannelSizes = CHANNEL_SIZES): ChannelBuffers {
  return {
    control: new SharedArrayBuffer(CONTROL_WORDS * 4),
    states: new SharedArrayBuffer(sizes.slots),
    started: new SharedArrayBuffer(sizes.slots * 8),
    request: new SharedArrayBuffer(sizes.ringBytes),
    reply: new SharedArrayBuffer(sizes.ringBytes),
  };
}
