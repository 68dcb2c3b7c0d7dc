// Owns what happens to a lost channel's outstanding requests — a pure function, judged by each
// request's state in shared memory after the outcomes the worker published were delivered.
//
// Invariants: a request that STARTED on the lost worker is failed — unless the handler declared
// itself idempotent, the worker died (not a load failure), the request was not the one the
// watchdog stopped the worker for, and it was not retried before: then it runs once more. One that
// never started is sent again (it never ran). Requests sent again keep their connection's order.
// Abandoned requests (already failed by the watchdog) and closed connections' requests are
// dropped. Every outstanding request lands in exactly one of resend / fail / drop.

import type { SlotEntry } from './slot-table.js';

export type LossCause = 'died' | 'timeout' | 'load';

export interface Lost<C> {
  started: Array<SlotEntry<C>>;
  queued: Array<SlotEntry<C>>;
}

export interface Recovery<C> {
  /** Per connection, oldest first: to run again elsewhere. */
  resend: Map<C, Array<SlotEntry<C>>>;
  /** To fail, each with why. */
  fail: Array<{ entry: SlotEntry<C>; cause: LossCause }>;
  /** Nothing more to do (abandoned, or the connection is gone). */
  drop: Array<SlotEntry<C>>;
}

export interface RecoveryFacts<C> {
  /** The worker died (or was stopped), rather than failing to load the handler. */
  died: boolean;
  /** The ref of the request the watchdog stopped the worker for, or 0. */
  killedFor: number;
  /** The handler is idempotent: a started request may run once more. */
  idempotent: boolean;
  /** Whether a connection is gone (its outcomes are dropped). */
  closed: (conn: C) => boolean;
}

export function recover<C>(lost: Lost<C>, facts: RecoveryFacts<C>): Recovery<C> {
  const resend = new Map<C, Array<SlotEntry<C>>>();
  const fail: Array<{ entry: SlotEntry<C>; cause: LossCause }> = [];
  const drop: Array<SlotEntry<C>> = [];
  const again = (entry: SlotEntry<C>) => {
    let list = resend.get(entry.conn);
    if (list === undefined) resend.set(entry.conn, (list = []));
    list.push(entry);
  };
  for (const entry of lost.started) {
    if (entry.abandoned || facts.closed(entry.conn)) drop.push(entry);
    else if (!facts.died) fail.push({ entry, cause: 'load' });
    else if (entry.ref === facts.killedFor) fail.push({ entry, cause: 'timeout' });
    else if (facts.idempotent && !entry.retried) {
      entry.retried = true;
      again(entry);
    } else fail.push({ entry, cause: 'died' });
  }
  for (const entry of lost.queued) {
    if (entry.abandoned || facts.closed(entry.conn)) drop.push(entry);
    else again(entry);
  }
  for (const list of resend.values()) list.sort((a, b) => a.seq - b.seq);
  return { resend, fail, drop };
}
