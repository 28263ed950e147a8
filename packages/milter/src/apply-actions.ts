// The one place where milter changes meet the server's message-rewriting API. `MessageEditor` is
// that API as the milter needs it (the milter action set: fields, body, recipients, quarantine,
// discard); coreEditor() maps it onto core's Message and Transaction (contract 2), and the tests
// also drive applyActions() with a recording editor and changes captured from real milters.
// Nothing else in the package touches the rewriting API.
import { discard, type EsmtpParameters, type Hooks, type Message, type Transaction } from "@postern/core";
import type { MilterAction } from "./actions.ts";
import { MilterError } from "./errors.ts";

/** What a data hook may answer (core contract 2 adds its discard verdict to these). */
export type DataVerdict = Exclude<Awaited<ReturnType<Hooks["data"]>>, undefined | void>;

export interface MessageEditor {
  /** Appends a field at the end of the header block (SMFIR_ADDHEADER). */
  addHeader(name: string, value: string): void;
  /** Inserts a field at `index`, 0 = top (SMFIR_INSHEADER). */
  insertHeader(index: number, name: string, value: string): void;
  /** Changes the `occurrence`-th field (1-based) called `name`; null removes it (SMFIR_CHGHEADER). */
  changeHeader(name: string, occurrence: number, value: string | null): void;
  /** Removes every field called `name`, or only its `occurrence`-th. */
  removeHeader(name: string, occurrence?: number): void;
  /** Replaces the body; the source is spooled and streamed, never held whole. */
  replaceBody(source: AsyncIterable<Buffer> | Buffer | string): Promise<void>;
  /** Adds a recipient; its route is resolved through the rcptTo hooks when omitted. */
  addRecipient(address: string, options?: { route?: string; parameters?: EsmtpParameters }): Promise<void>;
  removeRecipient(address: string): void;
  quarantine(reason: string): void;
  /** Replaces the envelope sender (SMFIR_CHGFROM). */
  changeSender(address: string, parameters?: EsmtpParameters): void;
  /** The data-hook verdict that answers 250 to the client and stores nothing. */
  discard(text?: string): DataVerdict;
}

/** Applies one milter's changes in the order the milter asked for them. */
export async function applyActions(editor: MessageEditor, actions: readonly MilterAction[]): Promise<void> {
  try {
    for (const action of actions) {
      switch (action.kind) {
        case "addHeader":
          editor.addHeader(action.name, action.value);
          break;
        case "insertHeader":
          editor.insertHeader(action.index, action.name, action.value);
          break;
        case "changeHeader":
          editor.changeHeader(action.name, action.occurrence, action.value);
          break;
        case "replaceBody":
          await editor.replaceBody(action.body.source());
          break;
        case "addRecipient":
          if (action.parameters) await editor.addRecipient(action.address, { parameters: action.parameters });
          else await editor.addRecipient(action.address);
          break;
        case "changeSender":
          editor.changeSender(action.address, action.parameters);
          break;
        case "removeRecipient":
          editor.removeRecipient(action.address);
          break;
        case "quarantine":
          editor.quarantine(action.reason);
          break;
      }
    }
  } finally {
    await discardSpooled(actions);
  }
}

/** The verdict for a milter's SMFIR_DISCARD. */
export function discardVerdict(editor: MessageEditor, text?: string): DataVerdict {
  return editor.discard(text);
}

/** Removes what the actions spooled (replacement bodies) once applied or abandoned. */
export async function discardSpooled(actions: readonly MilterAction[]): Promise<void> {
  for (const action of actions) if (action.kind === "replaceBody") await action.body.discard();
}

/**
 * The editor on core's API: header and body changes go to the message, recipients and quarantine
 * to the transaction, discard is core's verdict. Core applies each change at once, so the next
 * milter (and every later plugin, and the store) sees it.
 */
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
      // Nobody claims the address (or a plugin refused it): the change the milter asked for
      // cannot be made, and passing the message on without it is not ours to decide.
      const { code, status, text } = outcome.refusal;
      throw new MilterError(
        "POSTERN_MILTER_ACTION_FAILED",
        `the milter added the recipient ${address}, which was refused: ${code} ${status} ${text}`,
      );
    },
    removeRecipient(address) {
      transaction.removeRecipient(address);
    },
    quarantine: (reason) => transaction.quarantine(reason),
    changeSender: (address, parameters) => transaction.changeSender(address, parameters),
    discard: (text) => discard(text),
  };
}
