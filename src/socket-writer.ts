// Owns a stream connection's output on its way to the socket, for framed connections and sessions
// alike: the bytes not yet handed to the socket, handed over at most writeHighWaterMark at a time,
// and the one rule that disconnects a client for not reading (ERR_WRITE_BUFFER_OVERFLOW).
//
// The rule judges a backlog that does not drain, never the size of a reply (issue 16, item 11):
// a client is disconnected only when its unsent bytes (queued here plus the socket's own buffer)
// pass writeBufferHardLimit AND none of them reached the kernel for writeStallTimeout ms. A 32 MiB
// reply to a client that reads goes out whole, at the client's pace, however slow; a client that
// stops reading with more than the limit owed is disconnected writeStallTimeout later. Memory
// meanwhile is bounded by what the connection may have in flight and, across connections, by
// maxClientMemory (whose budget counts these bytes and evicts the biggest holders).
//
// Why the socket gets at most writeHighWaterMark at a time: progress is seen through write
// callbacks, and a write's callback runs once all of it is in the kernel. A reply handed to the
// socket whole would show no progress until its last byte left — minutes, for a slow reader of a
// big reply — and node:net batches what is buffered behind a pending write into one writev, so
// smaller write() calls alone would not help. So bytes wait here, and each slice's callback (the
// kernel took it) is the progress that keeps the stall timer from firing.
//
// At most one timer per connection: armed when the unsent bytes pass the limit, pushed back by
// every slice that reaches the kernel, cleared when they are back under it and by clear() (the
// connection is gone). It is unref'd: it never keeps a process alive.

import type { Socket } from 'node:net';

/** The options the writer applies (ResolvedOptions has them). */
export interface SocketWriterLimits {
  /** Bytes the socket is handed at most before the kernel takes them; also the read-pause mark the connection applies. */
  readonly writeHighWaterMark: number;
  /** Unsent bytes past which a stalled client is disconnected. */
  readonly writeBufferHardLimit: number;
  /** Ms without progress, past writeBufferHardLimit, before the client is disconnected; 0 = at once. */
  readonly writeStallTimeout: number;
}

/** What the writer tells its connection. */
export interface SocketWriterEvents {
  /** A slice of `bytes` reached the kernel (a session acknowledges them to its handler; reading may resume). */
  written(bytes: number): void;
  /** Unsent bytes past writeBufferHardLimit made no progress for writeStallTimeout: disconnect. */
  stalled(unsentBytes: number): void;
}

/** Small slices are joined into one buffer (one copy, one syscall); larger ones go as one writev. */
const CONCAT_BYTES = 64 * 1024;

export class SocketWriter {
  readonly #socket: Socket;
  readonly #limits: SocketWriterLimits;
  readonly #events: SocketWriterEvents;
  /** Bytes not yet handed to the socket, oldest first; #head indexes the first. */
  #queue: Uint8Array[] = NO_QUEUE;
  #head = 0;
  #queued = 0;
  /** Armed only while the unsent bytes are past writeBufferHardLimit. */
  #stallTimer: NodeJS.Timeout | undefined;
  /** writeBufferHardLimit, or more once rooms push to this client (raiseHardLimit). */
  #hardLimit: number;

  constructor(socket: Socket, limits: SocketWriterLimits, events: SocketWriterEvents) {
    this.#socket = socket;
    this.#limits = limits;
    this.#events = events;
    this.#hardLimit = limits.writeBufferHardLimit;
  }

  /** Lets this client owe up to `bytes` before the stall rule applies (never lowers the limit). */
  raiseHardLimit(bytes: number): void {
    if (bytes > this.#hardLimit) this.#hardLimit = bytes;
  }

  /** Bytes queued here, not yet handed to the socket. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** Bytes owed to the client and not yet in the kernel: queued here, plus the socket's own buffer. */
  get unsentBytes(): number {
    return this.#queued + this.#socket.writableLength;
  }

  /** Queues bytes; nothing is written until flush(). */
  push(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#queue === NO_QUEUE) this.#queue = [];
    this.#queue.push(bytes);
    this.#queued += bytes.length;
  }

  /**
   * Hands the socket what it has room for — while it holds less than writeHighWaterMark — and
   * judges the backlog. A slice the kernel takes at once leaves room for the next, so a reader
   * that keeps up gets everything in one call, as before.
   */
  flush(): void {
    const socket = this.#socket;
    const high = this.#limits.writeHighWaterMark;
    while (this.#queued > 0 && !socket.destroyed && socket.writableLength < high) {
      this.#writeSlice(high - socket.writableLength);
    }
    this.#judge();
  }

  /** The connection is gone (cut or closed): drop what is queued, disarm the timer. */
  clear(): void {
    this.#queue = NO_QUEUE;
    this.#head = 0;
    this.#queued = 0;
    clearTimeout(this.#stallTimer);
    this.#stallTimer = undefined;
  }

  /** Writes up to `room` bytes from the head of the queue, the last chunk with the progress callback. */
  #writeSlice(room: number): void {
    const slice: Uint8Array[] = [];
    let bytes = 0;
    while (bytes < room && this.#head < this.#queue.length) {
      const chunk = this.#queue[this.#head]!;
      const take = Math.min(chunk.length, room - bytes);
      if (take === chunk.length) {
        slice.push(chunk);
        this.#queue[this.#head++] = EMPTY; // let it go: the queue array may live on
      } else {
        slice.push(chunk.subarray(0, take)); // a view: no copy
        this.#queue[this.#head] = chunk.subarray(take);
      }
      bytes += take;
    }
    this.#queued -= bytes;
    if (this.#head === this.#queue.length) {
      this.#queue = NO_QUEUE;
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    const socket = this.#socket;
    // An error (the socket was destroyed) ends it here: no progress, no event, so nothing hands
    // over more. Otherwise the connection may hand over the next slice from `written` (what ends
    // that chain is said there).
    const done = (err?: Error | null): void => {
      if (err) return;
      this.#progress();
      this.#events.written(bytes);
    };
    if (slice.length === 1) socket.write(slice[0]!, done);
    else if (bytes <= CONCAT_BYTES) socket.write(Buffer.concat(slice, bytes), done);
    else {
      socket.cork(); // one writev, no copy
      for (let i = 0; i < slice.length - 1; i++) socket.write(slice[i]!);
      socket.write(slice[slice.length - 1]!, done);
      socket.uncork();
    }
  }

  /** A slice reached the kernel: the client reads. The stall clock starts over, or stops if the backlog is back under the limit. */
  #progress(): void {
    if (this.#stallTimer === undefined) return;
    if (this.unsentBytes <= this.#hardLimit) {
      clearTimeout(this.#stallTimer);
      this.#stallTimer = undefined;
    } else {
      this.#stallTimer.refresh();
    }
  }

  /** Past the hard limit: start the stall clock (or, with writeStallTimeout 0, disconnect now). */
  #judge(): void {
    if (this.#socket.destroyed) return;
    const unsent = this.unsentBytes;
    if (unsent <= this.#hardLimit) {
      if (this.#stallTimer !== undefined) {
        clearTimeout(this.#stallTimer);
        this.#stallTimer = undefined;
      }
      return;
    }
    if (this.#limits.writeStallTimeout === 0) {
      this.#events.stalled(unsent);
      return;
    }
    // The closure is made only when the timer is armed: an idle connection holds none.
    this.#stallTimer ??= setTimeout(() => this.#stalledFor(), this.#limits.writeStallTimeout).unref();
  }

  /** No slice reached the kernel for writeStallTimeout while past the limit. */
  #stalledFor(): void {
    this.#stallTimer = undefined;
    if (this.#socket.destroyed) return;
    const unsent = this.unsentBytes;
    if (unsent > this.#hardLimit) this.#events.stalled(unsent);
  }
}

const EMPTY = new Uint8Array(0);
/** The queue of every writer with nothing queued (idle connections hold no array of their own); never written to. */
const NO_QUEUE: Uint8Array[] = Object.freeze([]) as unknown as Uint8Array[];
