// A rcptTo hook that asks an HTTP service about each recipient, with a deadline.
import { accept, defer, type Plugin, parseOptions, reject } from "@postern/core";
import { z } from "zod";

const optionsSchema = z.strictObject({
  /** The policy service. It gets POST { recipient, sender, client } and answers { action, route? }. */
  url: z.url(),
  /** How long one answer may take; past it the recipient is deferred (451 4.4.3). */
  timeoutMs: z.number().int().positive().default(2000),
});

export type HttpRecipientPolicyOptions = z.input<typeof optionsSchema>;

interface PolicyAnswer {
  action: "accept" | "reject" | "next";
  route?: string;
}

export default function httpRecipientPolicy(options: HttpRecipientPolicyOptions): Plugin {
  const { url, timeoutMs } = parseOptions(optionsSchema, options, "http-recipient-policy");
  return {
    name: "http-recipient-policy",
    hooks: {
      async rcptTo(transaction, recipient, { signal, log }) {
        // Two deadlines: ours, and core's hook deadline (limits.hookTimeoutMs), which aborts `signal`.
        const deadline = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
        let answer: PolicyAnswer;
        try {
          const response = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({
              recipient: recipient.address,
              sender: transaction.mailFrom.address,
              client: transaction.session.remoteAddress,
            }),
            signal: deadline,
          });
          if (!response.ok) throw new Error(`the policy service answered HTTP ${response.status}`);
          answer = (await response.json()) as PolicyAnswer;
        } catch (error) {
          // Fail closed: no answer is never a yes. A 4xx makes the sender retry later.
          log.warn({ err: error }, "recipient policy unavailable");
          return defer("4.4.3", "Recipient policy unavailable, try again later");
        }
        switch (answer.action) {
          case "accept":
            return accept({ route: answer.route ?? "local" });
          case "reject":
            return reject("5.1.1", "No such user here");
          default:
            return undefined; // not ours: the next plugin decides
        }
      },
    },
  } satisfies Plugin;
}
