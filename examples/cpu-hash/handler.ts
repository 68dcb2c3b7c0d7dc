// The CPU-heavy example: each line <text> is answered with the hex PBKDF2-SHA256 of the text
// (salt "sockserv", 2000 iterations, 32 bytes) — about half a millisecond of pure CPU per request,
// the kind of handler that must run on the pool so the main thread stays responsive.

import { pbkdf2Sync } from 'node:crypto';
import { BaseRequestHandler } from 'sockserv';

export const SALT = 'sockserv';
export const ITERATIONS = 2000;

export default class HashHandler extends BaseRequestHandler {
  override handle(): string {
    return pbkdf2Sync(this.request, SALT, ITERATIONS, 32, 'sha256').toString('hex');
  }
}
