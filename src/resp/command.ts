// Owns decoding a RESP command frame into its arguments (parseCommand), for handlers of
// `framing: 'resp'`. Every RespFramer frame is one command in canonical multibulk form
// (./framer.ts explains why), so this reads only headers and jumps over the bulk bodies.

import { CR, DOLLAR, LF, MAX_DIGITS, STAR, describeByte, invalid } from './syntax.js';

/**
 * The arguments of one RESP command frame, as zero-copy views into it. Accepts the canonical
 * multibulk form every RespFramer frame has; throws ERR_FRAME_INVALID for anything else (a frame
 * from another framing, say). Costs O(arguments): bulk bodies are skipped, never scanned.
 */
export function parseCommand(frame: Buffer): Buffer[] {
  let pos = 0;
  const header = (type: number): number => {
    if (frame[pos] !== type) throw invalid(`parseCommand: expected ${describeByte(type)} at byte ${pos}`);
    let value = 0;
    let i = pos + 1;
    for (; i < frame.length && frame[i] !== CR; i++) {
      const c = frame[i]!;
      if (c < 0x30 || c > 0x39 || i - pos > MAX_DIGITS) throw invalid(`parseCommand: bad count or length at byte ${pos}`);
      value = value * 10 + (c - 0x30);
    }
    if (i === pos + 1 || frame[i + 1] !== LF) throw invalid(`parseCommand: bad header at byte ${pos}`);
    pos = i + 2;
    return value;
  };
  const count = header(STAR);
  const args = new Array<Buffer>(count);
  for (let n = 0; n < count; n++) {
    const length = header(DOLLAR);
    const end = pos + length;
    if (end + 2 > frame.length || frame[end] !== CR || frame[end + 1] !== LF) {
      throw invalid(`parseCommand: argument ${n} overruns the frame`);
    }
    args[n] = frame.subarray(pos, end);
    pos = end + 2;
  }
  if (pos !== frame.length) throw invalid(`parseCommand: ${frame.length - pos} bytes after the last argument`);
  return args;
}
