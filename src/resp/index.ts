// Owns the public face of sockserv's Redis-protocol (RESP2) support, for `framing: 'resp'`. The
// folder holds all of it:
//
//   framer.ts   RespFramer: bytes → one command per frame, in canonical multibulk form
//   command.ts  parseCommand: a frame → its arguments (zero-copy)
//   inline.ts   splitInline: Redis's sdssplitargs, for inline commands (telnet, nc)
//   encode.ts   the reply encoders (respSimple, respBulk…) and encodeCommand
//   syntax.ts   the type bytes and the ERR_FRAME_INVALID errors the readers share
//
// src/index.ts re-exports all of this file.

export { RespFramer } from './framer.js';
export { parseCommand } from './command.js';
export { encodeCommand, respArray, respBulk, respError, respInteger, respNullBulk, respPush, respSimple } from './encode.js';
