// Group commit for directory fsyncs. A link or rename into a directory (a Maildir's new/, a queue
// spool's msg/) is durable only once the directory itself is fsynced, and that fsync (~2 ms here)
// costs the same whether it covers one new entry or fifty. So writers into one directory share it: whoever asks while no fsync of that directory runs
// starts one at once; whoever asks while one runs waits for the next, which starts as soon as the
// running one ends and covers everyone who asked in between. A caller's promise resolves only
// after an fsync that *began after its call* — and so after its entry was made — has returned.
import { open } from "node:fs/promises";

/** fsync a directory, making the entries created or removed in it durable. */
export async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

interface Batch {
  readonly promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

function newBatch(): Batch {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((onResolve, onReject) => {
    resolve = onResolve;
    reject = onReject;
  });
  // A batch whose every caller gave up (e.g. past its deadline) must not become an unhandled rejection.
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

interface DirectoryState {
  /** Callers waiting for the fsync after the running one (undefined: nobody yet). */
  next: Batch | undefined;
}

export class DirectorySync {
  /** Directories with an fsync running; entries go when their last batch is done. */
  readonly #running = new Map<string, DirectoryState>();
  readonly #sync: (directory: string) => Promise<void>;
  #fsyncs = 0;

  constructor(sync: (directory: string) => Promise<void> = syncDirectory) {
    this.#sync = sync;
  }

  /** fsyncs done so far (for tests and figures: fewer than the deliveries under load). */
  get fsyncs(): number {
    return this.#fsyncs;
  }

  /** Resolves once an fsync of `directory` that started after this call has succeeded. */
  sync(directory: string): Promise<void> {
    const state = this.#running.get(directory);
    if (state) {
      state.next ??= newBatch();
      return state.next.promise;
    }
    const first = newBatch();
    const fresh: DirectoryState = { next: undefined };
    this.#running.set(directory, fresh);
    void this.#drain(directory, fresh, first);
    return first.promise;
  }

  async #drain(directory: string, state: DirectoryState, first: Batch): Promise<void> {
    let batch: Batch | undefined = first;
    while (batch) {
      this.#fsyncs++;
      try {
        await this.#sync(directory);
        batch.resolve();
      } catch (error) {
        // The whole batch fails: each writer in it undoes its entry (a delivery answers 4xx).
        batch.reject(error);
      }
      batch = state.next;
      state.next = undefined;
    }
    this.#running.delete(directory);
  }
}
