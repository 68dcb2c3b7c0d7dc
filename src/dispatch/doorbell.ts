// Owns the wake handshake of one direction of a channel, used by both sides: a sleeper that found
// its ring empty waits on a doorbell word; a waker that published rings it only if the sleeper
// said it sleeps. One system call per sleep, none while the other side is busy.
//
// Invariant (Dekker's pattern over sequentially consistent Atomics): the sleeper reads the bell,
// sets its flag, polls its ring (and the close word) again, then waits on the bell value it read
// first; the waker publishes, then reads the flag and, if set, bumps the bell and notifies. Either
// the sleeper's poll sees the publish, or the waker sees the flag and bumps the bell past the value
// the sleeper waits on — so Atomics.waitAsync returns at once ('not-equal') or is notified. No wake
// is lost; the WAKE_CHECK_MS timeout is only a safety net, and a wait that times out and then
// finds work is counted in MISSED_WAKES (tests expect none).

import { Ctl, WAKE_CHECK_MS } from './channel-protocol.js';

/** Which direction: the worker sleeping on requests, or the main thread sleeping on replies. */
export interface BellWords {
  bell: number;
  sleeping: number;
  /** Counts the wakes this direction's waker sent. */
  wakes: number;
}

export const TO_WORKER: BellWords = { bell: Ctl.REQ_BELL, sleeping: Ctl.WORKER_SLEEPING, wakes: Ctl.WAKES_TO_WORKER };
export const TO_MAIN: BellWords = { bell: Ctl.REP_BELL, sleeping: Ctl.MAIN_SLEEPING, wakes: Ctl.WAKES_TO_MAIN };

/**
 * The waker's side: call after publishing. True if the sleeper was woken. The waker clears the
 * flag it finds set (one waker per direction: the ring's single producer), so a burst of
 * publishes before the sleeper has run costs one notify, not one each.
 */
export function ring(ctl: Int32Array, words: BellWords): boolean {
  if (Atomics.compareExchange(ctl, words.sleeping, 1, 0) !== 1) return false;
  Atomics.add(ctl, words.bell, 1);
  Atomics.notify(ctl, words.bell);
  Atomics.add(ctl, words.wakes, 1);
  return true;
}

/** Rings unconditionally (close): whatever the sleeper waits on, it returns. */
export function ringAlways(ctl: Int32Array, words: BellWords): void {
  Atomics.add(ctl, words.bell, 1);
  Atomics.notify(ctl, words.bell);
}

/**
 * The sleeper's side. `ready()` polls the ring (and whatever else ends a sleep, such as CLOSE). It
 * returns null when there is work already (no wait), or a promise that settles when woken or after
 * WAKE_CHECK_MS. Both shapes of Atomics.waitAsync are handled: { async: false } means the bell
 * moved between the read and the wait — a wake, answered at once.
 */
export function sleep(ctl: Int32Array, words: BellWords, ready: () => boolean): Promise<void> | null {
  const seen = Atomics.load(ctl, words.bell);
  Atomics.store(ctl, words.sleeping, 1);
  if (ready()) {
    Atomics.store(ctl, words.sleeping, 0);
    return null;
  }
  const waited = Atomics.waitAsync(ctl, words.bell, seen, WAKE_CHECK_MS);
  if (!waited.async) {
    Atomics.store(ctl, words.sleeping, 0);
    return null;
  }
  return waited.value.then((outcome) => {
    Atomics.store(ctl, words.sleeping, 0);
    // Timed out, the bell never moved, yet there is work: the waker published without seeing the
    // flag — the lost wake this protocol rules out. (A waker caught between its publish and its
    // ring, nanoseconds apart, would also count: rare enough for a test to expect 0.)
    // A worker holding its wake on purpose (workers/outcome-writer.ts) is not a lost wake.
    if (outcome === 'timed-out' && Atomics.load(ctl, words.bell) === seen && Atomics.load(ctl, Ctl.HOLDING) === 0 && ready()) Atomics.add(ctl, Ctl.MISSED_WAKES, 1);
  });
}
