// Owns the PROXY protocol (HAProxy's spec, versions 1 and 2): a load balancer in TCP mode opens
// its own connection to us and, before any byte of the client's, sends one header naming the
// client it relays. This file only parses; ./header-reader.ts reads a socket with it.
//
//   v1: text   "PROXY TCP4 <src> <dst> <sport> <dport>\r\n" (TCP6, or "PROXY UNKNOWN …\r\n")
//   v2: binary 12-byte signature, ver/cmd, family/transport, 16-bit length, addresses, TLVs
//
// The parser is incremental ("incomplete" is a normal state: push more bytes) and bounded: it
// never holds more than one header's worth of bytes, and it fails as soon as the bytes seen
// cannot begin a valid header — a client that sends "GET /" fails on its first byte. Every
// failure is a SockservError with code ERR_PROXY_HEADER_INVALID. Bytes after the header are
// returned untouched: they are the first request bytes.

import { isIPv4, isIPv6 } from 'node:net';
import { ErrorCodes, SockservError } from '../errors.js';
import type { ClientAddress } from '../handler.js';

/** Longest v1 header the spec allows, CRLF included ("PROXY TCP6" with two full IPv6 addresses). */
export const PROXY_V1_MAX_BYTES = 107;
/** Largest v2 address block (two AF_UNIX paths of 108 bytes); TCP/UDP over IPv4/IPv6 use 12 or 36. */
const PROXY_V2_ADDRESS_MAX_BYTES = 216;
/** TLV bytes accepted after the v2 address block (ALPN, authority, unique id, cloud endpoint ids). */
export const PROXY_V2_TLV_MAX_BYTES = 512;
/** Longest v2 header accepted: 16 fixed bytes, the largest address block, the TLV allowance. */
export const PROXY_V2_MAX_BYTES = 16 + PROXY_V2_ADDRESS_MAX_BYTES + PROXY_V2_TLV_MAX_BYTES;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED_BYTES = 16;

/** The original connection a header describes. */
export type ProxyTransport = 'tcp4' | 'tcp6' | 'udp4' | 'udp6' | 'unix-stream' | 'unix-dgram' | 'unknown';

export interface ProxyTlv {
  readonly type: number;
  readonly value: Buffer;
}

export interface ProxyHeader {
  readonly version: 1 | 2;
  /** 'proxy': a relayed client connection. 'local': the proxy's own (health check); v2 only. */
  readonly command: 'proxy' | 'local';
  readonly transport: ProxyTransport;
  /**
   * The original client: [ip, port], or [path, 0] for AF_UNIX. null when the header names no
   * address (v1 UNKNOWN, v2 LOCAL or AF_UNSPEC): then the socket's own peer address stands.
   */
  readonly source: ClientAddress | null;
  /** The address the client connected to (the load balancer's listener), or null as above. */
  readonly destination: ClientAddress | null;
  /** v2 type-length-value extensions after the addresses, in order; not interpreted (CRC32C is not checked). */
  readonly tlvs: readonly ProxyTlv[];
  /** Bytes the header occupied on the wire. */
  readonly length: number;
}

export interface ProxyParseResult {
  readonly header: ProxyHeader;
  /** Bytes that followed the header in what was pushed: the start of the client's stream. */
  readonly rest: Buffer;
}

/**
 * Reads one PROXY header from a byte stream delivered in chunks of any size. push() returns
 * undefined while the header is incomplete, the header and the bytes after it once it is
 * complete, and throws ERR_PROXY_HEADER_INVALID for bytes that cannot be a valid header
 * (including a header longer than the bound of its version). Single use.
 */
export class ProxyHeaderParser {
  /** Bytes of an incomplete header: always fewer than PROXY_V2_MAX_BYTES before a push. */
  #buffered: Buffer = Buffer.alloc(0);
  #done = false;

  push(chunk: Buffer): ProxyParseResult | undefined {
    if (this.#done) throw invalid('the header was already read');
    const bytes = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    const result = parseProxyHeader(bytes);
    if (result === undefined) {
      this.#buffered = Buffer.from(bytes); // own copy: the socket's chunk may be pooled memory
      return undefined;
    }
    this.#done = true;
    this.#buffered = Buffer.alloc(0);
    return result;
  }
}

/**
 * Parses a PROXY header at the start of `bytes`: undefined if more bytes are needed, else the
 * header and the bytes after it. Throws ERR_PROXY_HEADER_INVALID.
 */
export function parseProxyHeader(bytes: Buffer): ProxyParseResult | undefined {
  if (bytes.length === 0) return undefined;
  if (bytes[0] === V1_PREFIX[0]) return parseV1(bytes);
  if (bytes[0] === V2_SIGNATURE[0]) return parseV2(bytes);
  throw invalid(`the connection does not start with a PROXY header (first byte 0x${bytes[0]!.toString(16).padStart(2, '0')})`);
}

// ---- version 1 -------------------------------------------------------------------------------

function parseV1(bytes: Buffer): ProxyParseResult | undefined {
  expectPrefix(bytes, V1_PREFIX, 'v1');
  const newline = bytes.indexOf(0x0a);
  if (newline === -1 || newline >= PROXY_V1_MAX_BYTES) {
    if (newline === -1 && bytes.length < PROXY_V1_MAX_BYTES) return undefined;
    throw invalid(`v1 header longer than ${PROXY_V1_MAX_BYTES} bytes`);
  }
  if (bytes[newline - 1] !== 0x0d) throw invalid('v1 header must end with CRLF');
  const line = bytes.toString('latin1', 0, newline - 1);
  if (/[^\x20-\x7e]/.test(line)) throw invalid('v1 header holds a byte that is not printable ASCII');
  const parts = line.split(' ');
  const length = newline + 1;
  const rest = bytes.subarray(length);
  const protocol = parts[1];
  if (protocol === 'UNKNOWN') {
    // The spec: whatever follows UNKNOWN is ignored, and the real connection endpoints are used.
    return { header: { version: 1, command: 'proxy', transport: 'unknown', source: null, destination: null, tlvs: [], length }, rest };
  }
  if (protocol !== 'TCP4' && protocol !== 'TCP6') throw invalid(`v1 protocol must be TCP4, TCP6 or UNKNOWN (got ${JSON.stringify(protocol ?? '')})`);
  if (parts.length !== 6) throw invalid('v1 header must be "PROXY TCPn SRC DST SPORT DPORT"');
  const isIP = protocol === 'TCP4' ? isIPv4 : isIPv6;
  const [, , sourceIp, destinationIp, sourcePort, destinationPort] = parts as [string, string, string, string, string, string];
  if (!isIP(sourceIp) || !isIP(destinationIp)) throw invalid(`v1 addresses are not ${protocol === 'TCP4' ? 'IPv4' : 'IPv6'}`);
  const header: ProxyHeader = {
    version: 1,
    command: 'proxy',
    transport: protocol === 'TCP4' ? 'tcp4' : 'tcp6',
    source: [sourceIp, v1Port(sourcePort)],
    destination: [destinationIp, v1Port(destinationPort)],
    tlvs: [],
    length,
  };
  return { header, rest };
}

function v1Port(text: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port <= 65535)) throw invalid(`v1 port ${JSON.stringify(text)} is not a number in 0..65535`);
  return port;
}

// ---- version 2 -------------------------------------------------------------------------------

/** Address-block size by address family (high nibble of byte 13): UNSPEC, INET, INET6, UNIX. */
const V2_ADDRESS_BYTES = [0, 12, 36, 216] as const;
/** The family/transport bytes the spec defines; any other must be rejected. */
const V2_FAMILIES = new Map<number, ProxyTransport>([
  [0x00, 'unknown'],
  [0x11, 'tcp4'],
  [0x12, 'udp4'],
  [0x21, 'tcp6'],
  [0x22, 'udp6'],
  [0x31, 'unix-stream'],
  [0x32, 'unix-dgram'],
]);

function parseV2(bytes: Buffer): ProxyParseResult | undefined {
  expectPrefix(bytes, V2_SIGNATURE, 'v2');
  // Each fixed byte is checked as soon as it is in, so garbage fails early.
  const versionCommand = bytes[12];
  if (versionCommand === undefined) return undefined;
  if (versionCommand >> 4 !== 2) throw invalid(`v2 version nibble must be 2 (got ${versionCommand >> 4})`);
  const commandBits = versionCommand & 0x0f;
  if (commandBits > 1) throw invalid(`v2 command must be LOCAL (0) or PROXY (1) (got ${commandBits})`);
  const familyByte = bytes[13];
  if (familyByte === undefined) return undefined;
  const transport = V2_FAMILIES.get(familyByte);
  if (transport === undefined) throw invalid(`v2 family/transport byte 0x${familyByte.toString(16).padStart(2, '0')} is not defined`);
  if (bytes.length < V2_FIXED_BYTES) return undefined;
  const addressBytes = V2_ADDRESS_BYTES[familyByte >> 4 as 0 | 1 | 2 | 3];
  const blockBytes = bytes.readUInt16BE(14);
  if (blockBytes > addressBytes + PROXY_V2_TLV_MAX_BYTES) {
    throw invalid(`v2 header of ${V2_FIXED_BYTES + blockBytes} bytes exceeds the bound (${addressBytes} address bytes + ${PROXY_V2_TLV_MAX_BYTES} TLV bytes)`);
  }
  const command = commandBits === 0 ? 'local' : 'proxy';
  if (command === 'proxy' && blockBytes < addressBytes) throw invalid(`v2 address block of ${blockBytes} bytes is shorter than its family needs (${addressBytes})`);
  const length = V2_FIXED_BYTES + blockBytes;
  if (bytes.length < length) return undefined;
  const rest = bytes.subarray(length);
  // LOCAL, and PROXY over AF_UNSPEC: the spec says to ignore the block and keep the real endpoints.
  if (command === 'local' || transport === 'unknown') {
    return { header: { version: 2, command, transport: command === 'local' ? 'unknown' : transport, source: null, destination: null, tlvs: [], length }, rest };
  }
  const block = bytes.subarray(V2_FIXED_BYTES, length);
  const [source, destination] = v2Addresses(block, familyByte >> 4);
  return { header: { version: 2, command, transport, source, destination, tlvs: v2Tlvs(block.subarray(addressBytes)), length }, rest };
}

function v2Addresses(block: Buffer, family: number): [ClientAddress, ClientAddress] {
  switch (family) {
    case 1:
      return [
        [formatIPv4(block.subarray(0, 4)), block.readUInt16BE(8)],
        [formatIPv4(block.subarray(4, 8)), block.readUInt16BE(10)],
      ];
    case 2:
      return [
        [formatIPv6(block.subarray(0, 16)), block.readUInt16BE(32)],
        [formatIPv6(block.subarray(16, 32)), block.readUInt16BE(34)],
      ];
    default:
      return [
        [unixPath(block.subarray(0, 108)), 0],
        [unixPath(block.subarray(108, 216)), 0],
      ];
  }
}

/** Walks the TLVs after the addresses; each must fit the block exactly. */
function v2Tlvs(bytes: Buffer): ProxyTlv[] {
  const tlvs: ProxyTlv[] = [];
  let at = 0;
  while (at < bytes.length) {
    if (bytes.length - at < 3) throw invalid('v2 TLV header truncated');
    const type = bytes[at]!;
    const size = bytes.readUInt16BE(at + 1);
    if (bytes.length - at - 3 < size) throw invalid(`v2 TLV 0x${type.toString(16)} of ${size} bytes overruns the header`);
    tlvs.push({ type, value: Buffer.from(bytes.subarray(at + 3, at + 3 + size)) });
    at += 3 + size;
  }
  return tlvs;
}

// ---- helpers ---------------------------------------------------------------------------------

/** Fails as soon as a buffered byte differs from the expected prefix (a partial prefix is fine). */
function expectPrefix(bytes: Buffer, prefix: Buffer, version: string): void {
  const n = Math.min(bytes.length, prefix.length);
  if (bytes.compare(prefix, 0, n, 0, n) !== 0) throw invalid(`bytes do not match the ${version} signature`);
}

function formatIPv4(bytes: Buffer): string {
  return `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`;
}

/** RFC 5952 text, as Node reports socket addresses: lower case, the longest zero run as "::". */
function formatIPv6(bytes: Buffer): string {
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${formatIPv4(bytes.subarray(12, 16))}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  let bestStart = -1;
  let bestLength = 1; // a single zero group is not shortened
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) [bestStart, bestLength] = [i, j - i];
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

function unixPath(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString('utf8', 0, end === -1 ? bytes.length : end);
}

function invalid(message: string): SockservError {
  return new SockservError(ErrorCodes.PROXY_HEADER_INVALID, `PROXY header: ${message}`);
}
