// Small plugins for tests: claim recipients, keep queued messages in memory. They are test
// doubles for *plugins*, not for servers: the SMTP server under test is always the real one.
import { accept, type Plugin, type RouteGroup, type Transaction } from "@postern/core";

/** Claims every recipient (or those matching `match`) with `route`. */
export function claimRecipients(options: { route?: string; match?: (address: string) => boolean } = {}): Plugin {
  const route = options.route ?? "local";
  return {
    name: "test:claim-recipients",
    hooks: {
      rcptTo(_transaction, recipient) {
        if (options.match && !options.match(recipient.address)) return undefined;
        return accept({ route });
      },
    },
  } satisfies Plugin;
}

export interface CapturedMessage {
  queueId: string;
  from: string;
  route: string;
  recipients: string[];
  /** The final bytes: prepended fields + original message. */
  bytes: Buffer;
  transaction: Transaction;
  group: RouteGroup;
}

export interface MemoryQueue {
  plugin: Plugin;
  messages: CapturedMessage[];
  /** Resolves with the next captured message. */
  next(timeoutMs?: number): Promise<CapturedMessage>;
}

/** Acknowledges every route group (or those of `routes`) after reading the whole message. */
export function memoryQueue(options: { routes?: string[] } = {}): MemoryQueue {
  const messages: CapturedMessage[] = [];
  const waiting: ((message: CapturedMessage) => void)[] = [];
  const plugin: Plugin = {
    name: "test:memory-queue",
    hooks: {
      async queue(transaction, message, group) {
        if (options.routes && !options.routes.includes(group.route)) return undefined;
        const chunks: Buffer[] = [];
        for await (const chunk of message.stream()) chunks.push(chunk as Buffer);
        const captured: CapturedMessage = {
          queueId: transaction.id,
          from: transaction.mailFrom.address,
          route: group.route,
          recipients: group.recipients.map((recipient) => recipient.address),
          bytes: Buffer.concat(chunks),
          transaction,
          group,
        };
        messages.push(captured);
        waiting.shift()?.(captured);
        return accept();
      },
    },
  };
  return {
    plugin,
    messages,
    next(timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no message queued in time")), timeoutMs);
        waiting.push((message) => {
          clearTimeout(timer);
          resolve(message);
        });
      });
    },
  };
}
