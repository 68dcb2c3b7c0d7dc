// Owns which kinds of request are suspect: a request of the kind killed a worker recently (the
// worker died while it ran synchronously, or the watchdog stopped the worker for it). The
// scheduler's bulkhead (scheduler.ts) keeps suspect requests apart: each runs on a worker no other
// connection's request is sent to, and they hold at most all open workers but one — so clients
// whose requests kill workers cannot take every worker from the others (a bulkhead with a circuit
// breaker per kind, as in Hystrix and resilience4j).
//
// A kind is its command, as the cost table keys it (request-costs.ts), but held here by its full
// 32-bit hash: a cheap command that shares a cost bucket with a killer is not made suspect.
// Suspicion ends SUSPECT_MS after the last kill, or at once when a request of the kind sent as a
// suspect — isolated, the half-open circuit's trial — completes: a kind that crashed a worker once
// on a rare input does not stay throttled. A reload forgets every kind (the new code may be fixed).
// The table is bounded (MAX_KINDS; the oldest mark goes).

/**
 * How long a kind stays suspect after one of its requests killed a worker. Long, because being
 * suspect costs a kind little — its requests still run, apart and one worker's worth at a time —
 * and the first of them to complete ends it; a short window would give back a free kill to a client
 * that pauses between attacks.
 */
export const SUSPECT_MS = 60_000;
/** Kinds remembered at once; a client naming ever new killer commands only ages out older marks. */
const MAX_KINDS = 256;

export class Suspects {
  /** Kind (full hash) → Date.now() until which it is suspect; insertion order is mark order. */
  readonly #until = new Map<number, number>();
  /** The earliest expiry among the marks (Infinity when none): expired marks are purged then, not looked for on every pass. */
  #earliest = Infinity;
  /** Counts kinds that stopped being suspect (cleared, expired, forgotten): the scheduler re-judges what it held back when it moves. */
  changes = 0;
  /** Bumped by clearAll (a reload): a request sent as a suspect before it clears nothing after it. */
  epoch = 1;

  /** A request of kind `kind` killed its worker at `now` (Date.now()). */
  mark(kind: number, now: number): void {
    const until = now + SUSPECT_MS;
    this.#until.delete(kind); // re-inserted last: the newest mark
    this.#until.set(kind, until);
    if (until < this.#earliest) this.#earliest = until;
    if (this.#until.size > MAX_KINDS) {
      this.#until.delete(this.#until.keys().next().value!);
      this.changes++;
    }
  }

  /** A request of kind `kind`, sent as a suspect in `epoch`, completed: the kind is trusted again (if no reload came between). */
  clear(kind: number, epoch: number): void {
    if (epoch === this.epoch && this.#until.delete(kind)) this.changes++;
  }

  /** Forgets every kind (a reload: the handler is new code). */
  clearAll(): void {
    this.epoch++;
    if (this.#until.size === 0) return;
    this.#until.clear();
    this.#earliest = Infinity;
    this.changes++;
  }

  /** Whether any kind is suspect at `now` (Date.now()); purges the expired ones when one is due. */
  any(now: number): boolean {
    if (this.#until.size === 0) return false; // the common case: nothing ever killed a worker
    if (now >= this.#earliest) this.#purge(now);
    return this.#until.size > 0;
  }

  /** Whether a request of kind `kind` is suspect at `now` (Date.now()). */
  has(kind: number, now: number): boolean {
    const until = this.#until.get(kind);
    return until !== undefined && until > now;
  }

  /** Kinds marked, some perhaps expired: 0 means none is suspect (a cheap test per serve()). */
  get size(): number {
    return this.#until.size;
  }

  /** Date.now() at which the next kind stops being suspect, or Infinity. */
  get nextExpiry(): number {
    return this.#earliest;
  }

  /** Kinds suspect at `now` (stats). */
  count(now: number): number {
    return this.any(now) ? this.#until.size : 0;
  }

  #purge(now: number): void {
    let earliest = Infinity;
    for (const [kind, until] of this.#until) {
      if (until <= now) {
        this.#until.delete(kind);
        this.changes++;
      } else if (until < earliest) earliest = until;
    }
    this.#earliest = earliest;
  }
}
