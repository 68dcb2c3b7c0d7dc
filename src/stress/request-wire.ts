// Owns the bytes a request puts on the wire. Every request of a run is the same payload, so it is
// framed once and copied into one batch buffer; sending k requests is then one write of a cached
// view of its first k copies — no allocation or copying per request on the hot path.

import type { StressFraming } from './options.js';

/** Batches stop growing at this size; a bigger refill goes out as several corked writes. */
const MAX_BATCH_BYTES = 256 * 1024;

/** One request as sent: the payload plus its framing. */
export function encodeRequest(payload: Buffer, framing: StressFraming): Buffer {
  switch (framing) {
    case 'line':
      return Buffer.concat([payload, NEWLINE]);
    case 'length': {
      const header = Buffer.allocUnsafe(4);
      header.writeUInt32BE(payload.length, 0);
      return Buffer.concat([header, payload]);
    }
    case 'raw':
      return Buffer.from(payload);
  }
}

/** `copies` back-to-back requests, handed out as views of the first k. Never mutated once built. */
export class RequestBatch {
  /** Bytes of one framed request. */
  readonly requestBytes: number;
  /** Most requests one view holds. */
  readonly copies: number;
  readonly #buffer: Buffer;
  /** views[k] is the first k requests, made on first use. */
  readonly #views: Array<Buffer | undefined>;

  constructor(request: Buffer, maxCount: number) {
    this.requestBytes = request.length;
    this.copies = Math.max(1, Math.min(maxCount, Math.floor(MAX_BATCH_BYTES / Math.max(1, request.length))));
    this.#buffer = Buffer.allocUnsafe(request.length * this.copies);
    for (let i = 0; i < this.copies; i++) request.copy(this.#buffer, i * request.length);
    this.#views = new Array<Buffer | undefined>(this.copies + 1);
  }

  /** The first `count` requests (1 <= count <= copies) as one buffer. */
  view(count: number): Buffer {
    return (this.#views[count] ??= this.#buffer.subarray(0, count * this.requestBytes));
  }
}

const NEWLINE = Buffer.from('\n');
