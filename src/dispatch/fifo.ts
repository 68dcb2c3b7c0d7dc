// Owns the FIFO queue the dispatch core keeps its waiting items in, on both threads: a growable
// ring of slots. shift() clears the slot it reads, so a consumed item (and the request buffer it
// holds) is garbage at once — a queue that never empties under load keeps only what it holds,
// not everything it ever held (an array consumed by a head index would grow by one per item).

const INITIAL = 8;

export class Fifo<T> {
  #items: Array<T | undefined> = new Array(INITIAL);
  #head = 0;
  #length = 0;

  get length(): number {
    return this.#length;
  }

  get empty(): boolean {
    return this.#length === 0;
  }

  push(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) & (this.#items.length - 1)] = item;
    this.#length++;
  }

  /** The oldest item, or undefined. */
  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const items = this.#items;
    const item = items[this.#head];
    items[this.#head] = undefined;
    this.#head = (this.#head + 1) & (items.length - 1);
    this.#length--;
    if (this.#length === 0) this.#head = 0;
    return item;
  }

  /** Puts `items` (oldest first) ahead of everything queued. */
  prepend(items: readonly T[]): void {
    if (items.length === 0) return;
    const rest = this.drainAll();
    for (const item of items) this.push(item);
    for (const item of rest) this.push(item);
  }

  /** Removes and returns every item, oldest first. */
  drainAll(): T[] {
    const out: T[] = [];
    for (let item = this.shift(); item !== undefined; item = this.shift()) out.push(item);
    this.#items = new Array(INITIAL);
    return out;
  }

  #grow(): void {
    const old = this.#items;
    const items: Array<T | undefined> = new Array(old.length * 2);
    for (let i = 0; i < this.#length; i++) items[i] = old[(this.#head + i) & (old.length - 1)];
    this.#items = items;
    this.#head = 0;
  }
}
