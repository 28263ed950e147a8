// Mailboxes this process has made (or found) complete with cur/, new/ and tmp/, so a delivery
// makes no mkdir calls for them — three mkdir and three stat per message otherwise. A mailbox
// removed behind our back shows up as ENOENT on the next delivery, which forgets it, makes it
// again and retries once. Bounded: the oldest entries go first, and a forgotten mailbox only
// costs its mkdir calls again.
import { ensureMaildir } from "./durable-fs.ts";

export class KnownMailboxes {
  readonly #known = new Set<string>();
  /** Mailboxes being made now: deliveries arriving meanwhile wait for the same mkdir calls. */
  readonly #making = new Map<string, Promise<void>>();
  readonly #limit: number;

  constructor(limit = 50_000) {
    this.#limit = limit;
  }

  /** Makes `mailbox` (and cur/, new/, tmp/) unless it is known to exist. */
  async ensure(mailbox: string): Promise<void> {
    if (this.#known.has(mailbox)) return;
    let making = this.#making.get(mailbox);
    if (!making) {
      making = ensureMaildir(mailbox).finally(() => this.#making.delete(mailbox));
      this.#making.set(mailbox, making);
    }
    await making;
    this.#known.add(mailbox);
    if (this.#known.size > this.#limit) this.#known.delete(this.#known.values().next().value!);
  }

  forget(mailbox: string): void {
    this.#known.delete(mailbox);
  }
}
