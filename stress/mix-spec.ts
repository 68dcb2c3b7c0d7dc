// Owns the two ways a user writes a mixed load on the command line, turned into MixEntry lists:
//   --mix 'PING:99,HASH x:1'   comma-separated PAYLOAD:WEIGHT (the last ':' splits, so a payload
//                              may hold ':'; one with ',' goes in a file)
//   --mix-file FILE            one `WEIGHT<TAB or spaces>PAYLOAD` per line; blank lines and lines
//                              starting with '#' are skipped; a trailing "\r" is dropped
// Weights are whole numbers >= 1. Errors are RangeErrors naming the entry or line.

import type { MixEntry } from './options.js';

export function parseMixSpec(spec: string): MixEntry[] {
  const entries = spec.split(',').map((item, i) => {
    const colon = item.lastIndexOf(':');
    if (colon <= 0) throw new RangeError(`--mix entry ${i + 1} "${item}" is not PAYLOAD:WEIGHT`);
    return { payload: Buffer.from(item.slice(0, colon)), weight: weight(item.slice(colon + 1), `--mix entry ${i + 1}`) };
  });
  if (entries.length === 0) throw new RangeError('--mix is empty');
  return entries;
}

export function parseMixFile(text: string): MixEntry[] {
  const entries: MixEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '' || line.startsWith('#')) return;
    const match = /^(\S+)[\t ]+(.+)$/.exec(line);
    if (!match) throw new RangeError(`--mix-file line ${i + 1} is not "WEIGHT PAYLOAD"`);
    entries.push({ payload: Buffer.from(match[2]!), weight: weight(match[1]!, `--mix-file line ${i + 1}`) });
  });
  if (entries.length === 0) throw new RangeError('--mix-file has no entries');
  return entries;
}

function weight(text: string, where: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 1_000_000) {
    throw new RangeError(`${where}: the weight must be a whole number from 1 to 1000000 (got "${text}")`);
  }
  return Number(text);
}
