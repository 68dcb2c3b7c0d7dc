// Owns the write set: connections with replies waiting to be written. Replies are appended to
// their connection as they are released; the write set flushes each such connection once per
// turn of the event loop (in the check phase, right after the poll phase that produced them), so
// fifty pipelined replies leave in one write(), as Redis does with its clients-pending-write list.

export interface Flushable {
  /** Set while the connection is in the write set, so adding it twice is a no-op. */
  inWriteSet: boolean;
  flushOutput(): void;
}

export class WriteSet {
  #pending: Flushable[] = [];
  #scheduled = false;
  readonly #flush = () => this.flush();

  add(connection: Flushable): void {
    if (connection.inWriteSet) return;
    connection.inWriteSet = true;
    this.#pending.push(connection);
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(this.#flush);
    }
  }

  flush(): void {
    this.#scheduled = false;
    const pending = this.#pending;
    this.#pending = [];
    for (const connection of pending) {
      connection.inWriteSet = false;
      connection.flushOutput();
    }
  }
}
