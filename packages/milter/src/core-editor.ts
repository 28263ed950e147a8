// The MessageEditor on core's rewriting API (contract 2): header and body changes go to the
// message, recipient changes and quarantine to the transaction, discard is core's verdict. Core
// applies each change at once, so the next milter (and every later plugin) sees it.
import { discard, type Message, type Transaction } from "@postern/core";
import type { MessageEditor } from "./apply-actions.ts";
import { MilterError } from "./errors.ts";

export function coreEditor(transaction: Transaction, message: Message): MessageEditor {
  return {
    addHeader: (name, value) => message.addHeader(name, value),
    insertHeader: (index, name, value) => message.insertHeader(index, name, value),
    changeHeader: (name, occurrence, value) => message.changeHeader(name, occurrence, value),
    removeHeader(name, occurrence) {
      message.removeHeader(name, occurrence);
    },
    replaceBody: (source) => message.replaceBody(source),
    async addRecipient(address, options) {
      const outcome = await transaction.addRecipient(address, options);
      if (outcome.ok) return;
      // Nobody claims the address (or a plugin refused it): the milter's change cannot be made,
      // and passing the message on without it is not ours to decide.
      throw new MilterError(
        "POSTERN_MILTER_ACTION_FAILED",
        `the milter added the recipient ${address}, which was refused: ${outcome.refusal.code} ${outcome.refusal.status} ${outcome.refusal.text}`,
      );
    },
    removeRecipient(address) {
      transaction.removeRecipient(address);
    },
    quarantine: (reason) => transaction.quarantine(reason),
    discard: (text) => discard(text),
  };
}
