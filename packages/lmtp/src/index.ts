// @postern/lmtp — hands messages to an LMTP server (RFC 2033) such as Dovecot's, over TCP or a Unix
// socket. Takes the route groups named in `routes` in the queue hook and answers accept() only when
// the LMTP server stored the message for every recipient (LMTP answers each recipient on its own;
// see verdict.ts for how those answers become one SMTP reply).
import { createHash } from "node:crypto";
import { defer, type Plugin, parseOptions } from "@postern/core";
import { LmtpConnectionError, type RecipientOutcome } from "./lmtp-client.ts";
import { LmtpPool } from "./lmtp-pool.ts";
import { type LmtpOptions, lmtpOptionsSchema } from "./options.ts";
import { RetryMemory } from "./retry-memory.ts";
import { combineOutcomes } from "./verdict.ts";

export type { RecipientOutcome } from "./lmtp-client.ts";
export { LmtpConnectionError } from "./lmtp-client.ts";
export type { LmtpOptions } from "./options.ts";

const pluginName = "@postern/lmtp";

/** SHA-256 of a message's original bytes (without Postern's prepended fields): same on every retry. */
async function digestOriginal(stream: AsyncIterable<Buffer>): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of stream) hash.update(chunk);
  return hash.digest("hex");
}

export default function lmtp(options: LmtpOptions): Plugin {
  const resolved = parseOptions(lmtpOptionsSchema, options, pluginName);
  const routes = new Set(resolved.routes);
  const memory =
    resolved.retryMemory === false
      ? undefined
      : new RetryMemory({
          maxEntries: resolved.retryMemory.maxEntries,
          ttlMs: resolved.retryMemory.ttlHours * 3_600_000,
        });
  const target = { host: resolved.host, port: resolved.port, socket: resolved.socket };
  const newPool = (lhloName: string) =>
    new LmtpPool(
      {
        target,
        lhloName,
        connectTimeoutMs: resolved.connectTimeoutMs,
        socketTimeoutMs: resolved.socketTimeoutMs,
      },
      resolved.connections,
    );
  // Made in setup, once the server's hostname (the LHLO name by default) is known.
  let pool: LmtpPool | undefined;

  return {
    name: pluginName,
    setup(server) {
      pool?.close();
      pool = newPool(resolved.lhloName ?? server.hostname);
    },
    close() {
      pool?.close();
    },
    hooks: {
      async queue(transaction, message, group, { signal, log }) {
        if (!routes.has(group.route)) return undefined;
        const mailFrom = transaction.mailFrom.address;
        // One RCPT per address: nodemailer matches LMTP replies to recipients by address.
        const recipients = [...new Map(group.recipients.map((r) => [r.address.toLowerCase(), r.address])).values()];

        // A retry of a message deferred earlier: skip recipients that already have it.
        let digest: string | undefined;
        let alreadyDelivered: string[] = [];
        if (memory?.mightHave(mailFrom, message.receivedSize)) {
          digest = await digestOriginal(message.original() as AsyncIterable<Buffer>);
          alreadyDelivered = recipients.filter((r) => memory.has(RetryMemory.key(digest!, mailFrom, r)));
        }
        const pending = recipients.filter((r) => !alreadyDelivered.includes(r));
        if (alreadyDelivered.length > 0) log.info({ alreadyDelivered }, "retry: skipping recipients delivered before");
        if (pending.length === 0) return combineOutcomes([], alreadyDelivered);

        const source = message.stream();
        pool ??= newPool(resolved.lhloName ?? "localhost");
        let outcomes: RecipientOutcome[];
        try {
          outcomes = await pool.deliver({
            mailFrom,
            recipients: pending,
            message: source,
            eightBit: transaction.bodyType.toLowerCase() === "8bitmime",
            signal,
          });
        } catch (error) {
          if (!(error instanceof LmtpConnectionError)) throw error;
          log.error({ err: error, code: error.code }, "LMTP delivery failed");
          // Once the message was flowing, some copies may be stored although no reply came back:
          // the retry can duplicate them, which is better than losing any.
          return error.transferStarted
            ? defer("4.4.2", "Connection to the mailbox server broke during delivery, try again later")
            : defer("4.4.1", "Mailbox server not reachable, try again later");
        }

        const delivered = outcomes.filter((o) => o.kind === "delivered").map((o) => o.recipient);
        const failed = outcomes.filter((o) => o.kind !== "delivered");
        if (failed.length > 0) log.warn({ failed, delivered }, "LMTP refused some recipients");
        else log.info({ delivered: delivered.length }, "delivered over LMTP");
        if (memory && failed.length > 0 && delivered.length > 0) {
          // Keyed by the bytes as received: the fields this server adds differ on every attempt.
          digest ??= await digestOriginal(message.original() as AsyncIterable<Buffer>);
          memory.remember(
            delivered.map((r) => RetryMemory.key(digest!, mailFrom, r)),
            mailFrom,
            message.receivedSize,
          );
        }
        return combineOutcomes(outcomes, alreadyDelivered);
      },
    },
  } satisfies Plugin;
}
