// Owns holding many idle client connections at once — what runStress does not do: open `count`
// connections in batches, keep them all open, and run request rounds over all of them (each
// connection sends its own line and must get exactly that line back from the echo server), so
// the server's memory can be read while every connection is open.

import { type Socket, connect } from 'node:net';

export interface Round {
  answered: number;
  wrong: number;
  missing: number;
  sec: number;
}

export class HeldConnections {
  readonly #sockets: Socket[] = [];
  /** Per socket: what arrived since the round started. */
  readonly #received: string[] = [];
  openErrors = 0;

  get size(): number {
    return this.#sockets.length;
  }

  /** Opens up to `count` connections, `batch` at a time; failures (and timeouts) are counted, not thrown. */
  async open(port: number, count: number, batch: number, signal: AbortSignal, timeoutMs = 10_000): Promise<void> {
    while (this.#sockets.length + this.openErrors < count) {
      signal.throwIfAborted();
      const n = Math.min(batch, count - this.#sockets.length - this.openErrors);
      await Promise.all(Array.from({ length: n }, () => this.#openOne(port, timeoutMs)));
    }
  }

  /** Every connection sends `line i r`; resolves once all replied or `timeoutMs` passed. */
  round(round: number, timeoutMs: number): Promise<Round> {
    const started = performance.now();
    const expected = this.#sockets.map((_, i) => `line ${i} ${round}\n`);
    let pending = this.#sockets.length;
    let wrong = 0;
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        for (const socket of this.#sockets) socket.removeAllListeners('data');
        const answered = this.#sockets.length - pending - wrong;
        resolve({ answered, wrong, missing: pending, sec: (performance.now() - started) / 1000 });
      };
      const timer = setTimeout(finish, timeoutMs);
      if (pending === 0) finish();
      this.#sockets.forEach((socket, i) => {
        this.#received[i] = '';
        socket.on('data', (chunk: string) => {
          const got = (this.#received[i] += chunk);
          if (got.length < expected[i]!.length) return;
          if (got !== expected[i]) wrong++;
          pending--;
          socket.removeAllListeners('data');
          if (pending === 0) finish();
        });
        socket.write(expected[i]!);
      });
    });
  }

  close(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.#sockets.length = 0;
  }

  #openOne(port: number, timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, noDelay: true });
      socket.setEncoding('latin1');
      const failed = (): void => {
        clearTimeout(timer);
        this.openErrors++;
        socket.destroy();
        resolve();
      };
      const timer = setTimeout(failed, timeoutMs);
      socket.once('error', failed);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.off('error', failed);
        socket.on('error', () => {}); // a reset later shows up as a missing reply
        this.#sockets.push(socket);
        resolve();
      });
    });
  }
}
