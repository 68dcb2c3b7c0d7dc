// Owns the contract between a stress connection and its reply framers: what a framer accepts
// (received chunks) and where each reply it completes goes. A leaf, so the RESP reply framer
// and the others (reply-framer.ts) need not import each other.

/** Splits received bytes into replies. */
export interface ReplyFramer {
  /** Consumes a chunk of received bytes, calling onReply for each reply it completes. */
  push(chunk: Buffer): void;
  /** Forgets any partial reply (the connection was replaced). */
  reset(): void;
}

/** Receives one reply (framing removed); an empty buffer when replies are only being counted. */
export type ReplySink = (reply: Buffer) => void;
