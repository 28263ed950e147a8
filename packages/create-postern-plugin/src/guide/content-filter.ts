// A content filter that rewrites the message: Subject, a removed field, a new body, one more recipient.
import type { Plugin } from "@postern/core";

/** Mail marked CONFIDENTIAL gets a tagged Subject, no X-Mailer, a notice for body, and a copy to the archive. */
export default function confidential(options: { archive: string }): Plugin {
  return {
    name: "confidential",
    hooks: {
      async data(transaction, message) {
        const subject = message.headers.get("subject") ?? "";
        if (!/\bconfidential\b/i.test(subject)) return undefined;
        message.changeHeader("Subject", 1, `[Confidential] ${subject}`);
        message.removeHeader("X-Mailer");
        await message.replaceBody("This message is confidential; read it in the archive.\r\n");
        // Routed by the rcptTo hooks like any recipient; nobody claiming it refuses the message.
        const copy = await transaction.addRecipient(options.archive);
        return copy.ok ? undefined : copy.refusal;
      },
    },
  } satisfies Plugin;
}
