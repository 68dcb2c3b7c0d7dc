// The cheap-and-heavy sockserv handler for the "cheap under heavy" scenario: PING is answered with
// PONG, any other line with its hex PBKDF2-SHA256 (bench/work.ts), on the same server.

import { BaseRequestHandler } from 'sockserv';
import { mixedReply } from '../work.js';

export default class MixedHandler extends BaseRequestHandler {
  override handle(): string {
    return mixedReply(this.request);
  }
}
