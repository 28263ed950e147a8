// When each queued message is next worth looking at, for the filesystem store: a binary min-heap
// of (time, message ID), earliest first and, at equal times, first scheduled first (arrival
// order). One live entry per message — scheduling it again replaces the entry, and the old one is
// skipped when it reaches the top — so claiming costs what is due, not a walk over a backlog of
// deferred mail.

interface Entry {
  readonly at: number;
  readonly order: number;
  readonly id: string;
}

export class DueSchedule {
  readonly #heap: Entry[] = [];
  /** Each message's live entry; heap entries that are not it are stale and skipped. */
  readonly #live = new Map<string, Entry>();
  #order = 0;

  /** The message is next worth a look at `at`, whatever was scheduled for it before. */
  schedule(id: string, at: number): void {
    if (this.#live.get(id)?.at === at) return;
    const entry = { at, order: this.#order++, id };
    this.#live.set(id, entry);
    this.#push(entry);
    // Stale entries leave when they reach the top; when they outnumber the live ones (a lease
    // scheduled for every delivery, then the message gone), the heap is rebuilt from the live ones.
    if (this.#heap.length > 2 * this.#live.size + 1024) this.#rebuild();
  }

  /** The earliest live entry's time, or undefined when nothing is scheduled. */
  peek(): number | undefined {
    this.#dropStale();
    return this.#heap[0]?.at;
  }

  /** Takes the earliest message due at or before `now`, or undefined. */
  takeDue(now: number): string | undefined {
    this.#dropStale();
    const top = this.#heap[0];
    if (!top || top.at > now) return undefined;
    this.#pop();
    this.#live.delete(top.id);
    return top.id;
  }

  /** The message is gone: its entry is skipped from now on. */
  forget(id: string): void {
    this.#live.delete(id);
  }

  clear(): void {
    this.#heap.length = 0;
    this.#live.clear();
  }

  get size(): number {
    return this.#live.size;
  }

  #dropStale(): void {
    while (this.#heap.length > 0) {
      const top = this.#heap[0]!;
      if (this.#live.get(top.id) === top) return;
      this.#pop();
    }
  }

  #rebuild(): void {
    // A sorted array is a heap.
    const entries = [...this.#live.values()].sort((a, b) => a.at - b.at || a.order - b.order);
    this.#heap.length = 0;
    for (const entry of entries) this.#heap.push(entry);
  }

  /** Entries in the heap, stale ones included (for tests). */
  get heapSize(): number {
    return this.#heap.length;
  }

  #before(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.order < b.order);
  }

  #push(entry: Entry): void {
    const heap = this.#heap;
    heap.push(entry);
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.#before(heap[index]!, heap[parent]!)) break;
      [heap[index], heap[parent]] = [heap[parent]!, heap[index]!];
      index = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < heap.length && this.#before(heap[left]!, heap[smallest]!)) smallest = left;
      if (right < heap.length && this.#before(heap[right]!, heap[smallest]!)) smallest = right;
      if (smallest === index) return;
      [heap[index], heap[smallest]] = [heap[smallest]!, heap[index]!];
      index = smallest;
    }
  }
}
