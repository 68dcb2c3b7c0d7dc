// Owns which kinds of request are suspect: a request of the kind killed a worker recently (the
// worker died while it ran, or the watchdog stopped the worker for it). The scheduler's bulkhead
// (scheduler.ts) keeps suspect requests apart: each runs on a worker no other connection's
// request is sent to, and they may hold at most all open workers but one — so clients whose
// requests kill workers cannot take every worker from the others (a circuit breaker per kind, as
// in Netflix Hystrix's bulkheads, with the isolation of Erlang's "let it crash" supervisors).
//
// A kind is its command, as the cost table keys it (request-costs.ts), but held here by its full
// 32-bit hash: a cheap command that shares a cost bucket with a killer is not made suspect.
// Suspicion ends SUSPECT_MS after the last kill, or at once when a request of the kind sent as a
// suspect — isolated, the half-open circuit's trial — completes: a kind that crashed a worker once
// on a rare input does not stay throttled. The table is bounded (MAX_KINDS; the oldest mark goes).

/** How long a kind stays suspect after one of its requests killed a worker. */
const SUSPECT_MS = 10_000;
/** Kinds remembered at once; a client naming ever new killer commands only ages out older marks. */
const MAX_KINDS = 256;

export class Suspects {
  /** Kind (full hash) → Date.now() until which it is suspect; insertion order is mark order. */
  readonly #until = new Map<number, number>();

  /** A request of kind `kind` killed its worker at `now` (Date.now()). */
  mark(kind: number, now: number): void {
    this.#until.delete(kind); // re-inserted last: the newest mark
    this.#until.set(kind, now + SUSPECT_MS);
    if (this.#until.size > MAX_KINDS) this.#until.delete(this.#until.keys().next().value!);
  }

  /** A request of kind `kind` sent as a suspect completed: the kind is trusted again. */
  clear(kind: number): void {
    this.#until.delete(kind);
  }

  /** Whether a request of kind `kind` is suspect at `now` (Date.now()). */
  has(kind: number, now: number): boolean {
    if (this.#until.size === 0) return false; // the common case: nothing ever killed a worker
    const until = this.#until.get(kind);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#until.delete(kind);
    return false;
  }

  /** Kinds marked, some perhaps expired: 0 means none is suspect (a cheap test per serve()). */
  get size(): number {
    return this.#until.size;
  }

  /** Kinds suspect at `now` (stats). */
  count(now: number): number {
    let count = 0;
    for (const until of this.#until.values()) if (until > now) count++;
    return count;
  }
}
