// A data hook that adds a header field.
import type { Plugin } from "@postern/core";

/**
 * Records the envelope sender in a Return-Path field (RFC 5321 §4.4), as a server that delivers
 * to mailboxes should, and drops any Return-Path the sender wrote: only ours can be trusted.
 */
export default function returnPath(): Plugin {
  return {
    name: "return-path",
    hooks: {
      data(transaction, message) {
        message.removeHeader((field) => field.name.toLowerCase() === "return-path");
        message.prepend("Return-Path", `<${transaction.mailFrom.address}>`);
      },
    },
  } satisfies Plugin;
}
