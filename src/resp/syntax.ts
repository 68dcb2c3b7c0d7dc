// Owns the bytes and errors the RESP readers share (framer, command decoder, inline splitter):
// the type bytes, the digit limit of counts and lengths, and ERR_FRAME_INVALID with a readable byte.

import { ErrorCodes, SockservError } from '../errors.js';

export const CR = 0x0d;
export const LF = 0x0a;
export const STAR = 0x2a; // '*'
export const DOLLAR = 0x24; // '$'
export const MINUS = 0x2d; // '-'
/** Digits a count or length may have: 15 keeps every value a safe integer. */
export const MAX_DIGITS = 15;

/** A byte for an error message: the character when printable, else 0xNN. */
export function describeByte(c: number): string {
  return c >= 0x21 && c <= 0x7e ? `'${String.fromCharCode(c)}'` : `0x${c.toString(16).padStart(2, '0')}`;
}

/** ERR_FRAME_INVALID: the bytes are not RESP (the connection replies to what came before, then closes). */
export function invalid(message: string): SockservError {
  return new SockservError(ErrorCodes.FRAME_INVALID, message);
}
