// The trivial sockserv handler for the benchmark: every line is answered with PONG.

import { BaseRequestHandler } from 'sockserv';
import { PONG } from '../work.js';

export default class PingHandler extends BaseRequestHandler {
  override handle(): string {
    return PONG;
  }
}
