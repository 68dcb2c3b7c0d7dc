// Owns the public face of sockserv's Redis-protocol (RESP2) support, for `framing: 'resp'`: the
// framer and the decoder of its command frames (src/framing/resp.ts), and the reply encoders
// (./encode.ts). src/index.ts re-exports all of it.

export { RespFramer, parseCommand } from '../framing/resp.js';
export { encodeCommand, respArray, respBulk, respError, respInteger, respNullBulk, respSimple } from './encode.js';
