// WriteSet (src/write-set.ts), fed directly: a connection added any number of times in one turn
// is flushed once, after the current turn's work (setImmediate, the check phase), connections in
// the order they were added; a connection that adds itself again while flushing is flushed again
// on the next turn, not in a loop within this one.

import { type Flushable, WriteSet } from '../src/write-set.js';

function connection(name: string, log: string[], onFlush?: () => void): Flushable {
  return {
    inWriteSet: false,
    flushOutput() {
      log.push(name);
      onFlush?.();
    },
  };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

test('added any number of times in a turn, a connection is flushed once, after the turn, in order of first add', async () => {
  const set = new WriteSet();
  const log: string[] = [];
  const a = connection('a', log);
  const b = connection('b', log);
  set.add(a);
  set.add(b);
  set.add(a);
  expect(a.inWriteSet).toBe(true);
  await Promise.resolve();
  expect(log).toEqual([]); // not in this turn: replies released later in it join the same write
  await nextTurn();
  expect(log).toEqual(['a', 'b']);
  expect(a.inWriteSet).toBe(false);
  await nextTurn();
  expect(log).toEqual(['a', 'b']); // nothing is flushed twice
});

test('a connection that adds itself while being flushed is flushed again on the next turn', async () => {
  const set = new WriteSet();
  const log: string[] = [];
  let again = true;
  const a: Flushable = connection('a', log, () => {
    if (again) set.add(a);
    again = false;
  });
  set.add(a);
  await nextTurn();
  expect(log).toEqual(['a']);
  await nextTurn();
  expect(log).toEqual(['a', 'a']);
});

test('flush() empties the set at once; the turn already scheduled then finds nothing to flush', async () => {
  const set = new WriteSet();
  const log: string[] = [];
  set.add(connection('a', log));
  set.flush();
  expect(log).toEqual(['a']);
  await nextTurn();
  expect(log).toEqual(['a']);
});
