// Mail the server hands to itself: delivery reports for local senders, reports a plugin writes.
// It takes the path a message from a client takes after the transfer — each recipient routed by
// the rcptTo hooks (so a local domain is delivered locally, whatever outbound's routes say, and an
// address nobody claims is refused), then the queue hooks store every route group — but no
// client-facing hooks run (there is no client) and no data hooks (like Postfix, which filters no
// mail it makes itself). It resolves once every stored group is durable.
import { Readable } from "node:stream";
import type { SMTPServerSession } from "smtp-server";
import type { ServerConfig } from "./config.ts";
import { PosternError } from "./errors.ts";
import type { createMessagePath } from "./message-path.ts";
import { newQueueId } from "./queue-id.ts";
import { replyError, type SmtpReply } from "./reply.ts";
import type { AddRecipientOutcome, Address, ListenerInfo, Recipient } from "./session.ts";
import { SessionState, TransactionState } from "./session-state.ts";
import { spoolMessage } from "./spool.ts";

export interface Submission {
  /** The envelope sender ("" for a delivery report). */
  readonly from: string;
  readonly recipients: readonly string[];
  /** The whole message (header and body), CRLF line ends. */
  readonly message: Buffer | string | AsyncIterable<Buffer>;
  /**
   * Recipients the hooks route to one of these are handed back instead of stored (outbound passes
   * its own routes: a report to a remote sender keeps its envelope in outbound's queue).
   */
  readonly declineRoutes?: readonly string[];
}

export interface SubmissionOutcome {
  /** The queue ID, when any recipient was stored. */
  readonly queueId: string | undefined;
  /** Recipients stored (with their routes). */
  readonly stored: readonly Recipient[];
  /** Recipients the rcptTo hooks refused, with the reply: the caller delivers those another way or not at all. */
  readonly refused: readonly { readonly address: string; readonly reply: SmtpReply }[];
  /** Recipients routed to one of `declineRoutes`, not stored. */
  readonly declined: readonly Recipient[];
}

/** The listener local submissions seem to arrive on: plugins can tell them from SMTP clients. */
export const localListener: ListenerInfo = Object.freeze({ name: "local", address: "127.0.0.1", port: 0, tls: "none" });

export function createLocalSubmission(dependencies: {
  config: ServerConfig;
  messagePath: ReturnType<typeof createMessagePath>;
  claim: (transaction: TransactionState, candidate: Address) => Promise<AddRecipientOutcome & { reply?: SmtpReply }>;
}) {
  const { config, messagePath, claim } = dependencies;
  return async function submit(submission: Submission): Promise<SubmissionOutcome> {
    const smtp = {
      id: `local-${newQueueId()}`,
      remoteAddress: "127.0.0.1",
      remotePort: 0,
      localAddress: "127.0.0.1",
      localPort: 0,
      clientHostname: "localhost",
      envelope: { mailFrom: false, rcptTo: [] },
    } as unknown as SMTPServerSession;
    const session = new SessionState(smtp, localListener);
    session.heloName = config.hostname;
    session.greeting = "EHLO";
    const transaction = new TransactionState(session, { address: submission.from, parameters: {} }, smtp, claim);
    session.transaction = transaction;
    const refused: { address: string; reply: SmtpReply }[] = [];
    for (const address of submission.recipients) {
      const outcome = await claim(transaction, { address, parameters: {} });
      if (!outcome.ok) refused.push({ address, reply: outcome.reply! });
    }
    const decline = new Set(submission.declineRoutes ?? []);
    const declined = transaction.recipients.filter((recipient) => decline.has(recipient.route));
    for (const recipient of declined) transaction.removeRecipient(recipient.address);
    if (transaction.recipients.length === 0) return { queueId: undefined, stored: [], refused, declined };
    const source =
      typeof submission.message === "string" || Buffer.isBuffer(submission.message)
        ? Readable.from([Buffer.from(submission.message)])
        : Readable.from(submission.message);
    const spooled = await spoolMessage(source, {
      maxSize: Number.MAX_SAFE_INTEGER,
      memoryThreshold: config.limits.memoryThreshold,
      spoolDir: config.spoolDir,
      bareNewlines: "normalize",
      maxLineLength: Number.MAX_SAFE_INTEGER,
    });
    if (!spooled.ok)
      throw replyError({ code: 554, message: `5.6.0 Local message refused (${spooled.problem})`, close: false });
    try {
      await messagePath.process(transaction, spooled.message, { dataHooks: false });
    } catch (cause) {
      throw new PosternError(
        "POSTERN_SUBMIT_REFUSED",
        `a message to ${submission.recipients.join(", ")} was not stored: ${(cause as Error).message}`,
        { cause },
      );
    } finally {
      await spooled.discard();
    }
    return { queueId: transaction.id, stored: [...transaction.recipients], refused, declined };
  };
}
