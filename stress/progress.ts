// Owns what `sockserv stress` shows while it runs, on stderr: the header line at once, then a
// progress line about once a second. On a terminal the progress line is rewritten in place and
// erased before the report; piped or captured (stdout to a file, CI logs), each second is a line of
// its own, so a run that takes minutes shows it is alive. The report itself goes to stdout.

import type { ProgressSample } from './options.js';

export class ProgressLine {
  readonly #stream: NodeJS.WriteStream;
  /** A terminal: rewrite one line in place instead of adding a line a second. */
  readonly #inPlace: boolean;
  #shown = false;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    this.#stream = stream;
    this.#inPlace = stream.isTTY === true;
  }

  /** Writes the run's header (what is about to be measured) before the first connection. */
  header(text: string): void {
    this.#stream.write(`${text}\n`);
  }

  /** Shows `sample`: in place of the previous line on a terminal, else as a line of its own. */
  update = (sample: ProgressSample): void => {
    const line =
      `  ${sample.elapsedSec.toFixed(0).padStart(4)} s  ${sample.phase.padEnd(7)}` +
      `  ${Math.round(sample.rps).toLocaleString('en-US').padStart(9)} req/s` +
      `  p99 ${sample.p99Ms > 0 ? `${sample.p99Ms.toFixed(3)} ms` : '-'}  in flight ${sample.inFlight}` +
      `  conns ${sample.connections}  errors ${sample.errors}`;
    if (!this.#inPlace) {
      this.#stream.write(`${line}\n`);
      return;
    }
    this.#stream.write(`\r\x1b[2K${line}`);
    this.#shown = true;
  };

  /** Erases the in-place line so what follows starts on a clean line. */
  clear(): void {
    if (this.#shown) this.#stream.write('\r\x1b[2K');
    this.#shown = false;
  }
}
