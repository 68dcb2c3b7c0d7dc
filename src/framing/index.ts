// Owns the `framing` option: turns what a user writes ('line', 'length', 'raw', 'resp',
// 'delimiter:0d0a', { delimiter }, or a FramerFactory) into a factory that makes one Framer per connection.

import { type SockservError, badOption } from '../errors.js';
import { respBulk, respError, respPush } from '../resp/encode.js';
import { RespFramer } from '../resp/framer.js';
import { DelimiterFramer, LineFramer } from './delimiter.js';
import type { FramerFactory } from './framer.js';
import { LengthPrefixFramer } from './length-prefix.js';
import { RawFramer } from './raw.js';

export type { Framer, FramerFactory, FramerLimits } from './framer.js';
export { ByteQueue } from './byte-queue.js';
export { DelimiterFramer, LineFramer } from './delimiter.js';
export { LengthPrefixFramer } from './length-prefix.js';
export { RawFramer } from './raw.js';

/** 'raw' | 'line' | 'length' | 'resp' | 'delimiter:HEX' | { delimiter } | a FramerFactory. */
export type FramingSpec =
  | 'raw'
  | 'line'
  | 'length'
  | 'resp'
  | `delimiter:${string}`
  | {
      /** The bytes that end each request (a string is taken as UTF-8). */
      delimiter: string | Uint8Array;
    }
  | FramerFactory;

/** A `framing` option resolved by resolveFraming(): its name and the factory of one framer per connection. */
export interface ResolvedFraming {
  /** A short name for logs, stats and the handler's `server.framing`. */
  name: string;
  create: FramerFactory;
  /** The protocol's own error reply (before framer.encode), where it has one: RESP's `-ERR …`. */
  errorReply?: (error: SockservError) => Buffer;
  /**
   * How a message rooms push (broadcast to `room`, or sendTo: null) is wrapped before
   * framer.encode, where the protocol has a form for it: RESP's push. Absent: the message is
   * framed as a reply is.
   */
  push?: (data: Buffer, room: string | null) => Buffer;
}

/** Checks a `framing` option and makes its framer factory; throws ERR_BAD_OPTION for an unknown or malformed one. */
export function resolveFraming(spec: FramingSpec): ResolvedFraming {
  if (typeof spec === 'function') return { name: spec.name || 'custom', create: spec };
  if (typeof spec === 'object' && spec !== null && 'delimiter' in spec) {
    const bytes = typeof spec.delimiter === 'string' ? Buffer.from(spec.delimiter) : spec.delimiter;
    return delimiterFraming(bytes, `delimiter:${Buffer.from(bytes).toString('hex')}`);
  }
  switch (spec) {
    case 'raw':
      return { name: 'raw', create: (limits) => new RawFramer(limits) };
    case 'line':
      return { name: 'line', create: (limits) => new LineFramer(limits) };
    case 'length':
      return { name: 'length', create: (limits) => new LengthPrefixFramer(limits) };
    case 'resp':
      return {
        name: 'resp',
        create: (limits) => new RespFramer(limits),
        errorReply: (error) => respError(`ERR ${error.code}`),
        push: (data, room) => respPush(room === null ? [MESSAGE, respBulk(data)] : [MESSAGE, respBulk(room), respBulk(data)]),
      };
  }
  if (typeof spec === 'string' && spec.startsWith('delimiter:')) {
    const hex = spec.slice('delimiter:'.length);
    if (!/^([0-9a-fA-F]{2})+$/.test(hex)) {
      throw badOption(`framing "${spec}": the delimiter must be non-empty hex, e.g. delimiter:0d0a`);
    }
    return delimiterFraming(Buffer.from(hex, 'hex'), spec);
  }
  throw badOption(
    `unknown framing ${JSON.stringify(spec)}: use raw, line, length, resp, delimiter:HEX or a FramerFactory`,
  );
}

const MESSAGE = respBulk('message');

function delimiterFraming(bytes: Uint8Array, name: string): ResolvedFraming {
  if (bytes.length === 0) throw badOption('framing delimiter must not be empty');
  return { name, create: (limits) => new DelimiterFramer(bytes, limits) };
}
