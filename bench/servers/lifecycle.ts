// Owns how a benchmark server process lives, shared by every server program in this folder:
// announce each listener with the line the harness parses, and exit promptly on SIGTERM/SIGINT
// or when stdin closes (the harness is gone), after an optional graceful stop.

/** Prints the line bench/children.ts waits for, one per listener. */
export function announce(host: string, port: number): void {
  process.stdout.write(`listening on tcp://${host}:${port}\n`);
}

/** Runs `stop` once (bounded to 2 s) on SIGTERM, SIGINT or stdin EOF, then exits 0. */
export function exitOnStop(stop: () => unknown = () => {}): void {
  let stopping = false;
  const run = (): void => {
    if (stopping) return;
    stopping = true;
    setTimeout(() => process.exit(0), 2000).unref();
    Promise.resolve()
      .then(stop)
      .catch(() => {})
      .finally(() => process.exit(0));
  };
  process.once('SIGTERM', run);
  process.once('SIGINT', run);
  process.stdin.on('end', run);
  process.stdin.on('error', run);
  process.stdin.resume();
}
