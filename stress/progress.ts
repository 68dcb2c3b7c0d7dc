// Owns the live progress line: one line on stderr, rewritten in place about once a second, and
// only when stderr is a terminal — piped or captured output (CI logs, --json consumers) stays clean.

import type { ProgressSample } from './options.js';

export class ProgressLine {
  readonly #stream: NodeJS.WriteStream;
  readonly enabled: boolean;
  #shown = false;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
    this.enabled = stream.isTTY === true;
  }

  /** Shows `sample` in place of the previous line (a no-op when not a terminal). */
  update = (sample: ProgressSample): void => {
    if (!this.enabled) return;
    const line =
      `  ${sample.elapsedSec.toFixed(0).padStart(4)} s  ${sample.phase.padEnd(7)}` +
      `  ${Math.round(sample.rps).toLocaleString('en-US').padStart(9)} req/s` +
      `  p99 ${sample.p99Ms > 0 ? `${sample.p99Ms.toFixed(3)} ms` : '-'}  in flight ${sample.inFlight}` +
      `  conns ${sample.connections}  errors ${sample.errors}`;
    this.#stream.write(`\r\x1b[2K${line}`);
    this.#shown = true;
  };

  /** Erases the line so the report starts on a clean line. */
  clear(): void {
    if (this.#shown) this.#stream.write('\r\x1b[2K');
    this.#shown = false;
  }
}
