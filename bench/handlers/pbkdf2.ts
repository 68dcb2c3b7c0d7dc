// The CPU-heavy sockserv handler for the benchmark: each line is answered with its hex
// PBKDF2-SHA256 (bench/work.ts), the same call the hand-written baselines make.

import { BaseRequestHandler } from 'sockserv';
import { hashLine } from '../work.js';

export default class Pbkdf2Handler extends BaseRequestHandler {
  override handle(): string {
    return hashLine(this.request);
  }
}
