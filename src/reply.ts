// Owns what a reply is on its way back: the bytes a handler produced, or null for none. Workers
// and the inline dispatcher make replies (run-handler.ts); ReplyOrder, Connection and the UDP
// endpoint carry them to the socket.

/** The reply bytes, or null when the handler wrote nothing (then nothing is sent). */
export type Reply = Buffer | null;

// The last string reply and its bytes: handlers often answer with the same constant ("OK",
// "+PONG\r\n"), and replies are never mutated after this point, so one encoding can be shared.
let lastText = '';
let lastBytes = Buffer.alloc(0);

/** A reply chunk as bytes: a Buffer as is, other bytes as a view, text encoded (cached when repeated). */
export function replyBytes(chunk: string | Uint8Array): Buffer {
  if (typeof chunk === 'string') {
    if (chunk !== lastText) {
      lastText = chunk;
      lastBytes = Buffer.from(chunk);
    }
    return lastBytes;
  }
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}
