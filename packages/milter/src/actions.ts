// The changes a milter asked for at end of message, in the order it asked, as plain data. They are
// collected while the milter talks and applied afterwards through apply-actions.ts, the one place
// that knows the server's rewriting API.
import type { MilterReply } from "./protocol/packets.ts";
import type { ReplacementBody } from "./replacement-body.ts";

export type MilterAction =
  /** SMFIR_ADDHEADER: append a field at the end of the header block. */
  | { kind: "addHeader"; name: string; value: string }
  /** SMFIR_INSHEADER: insert a field at `index` (0 = top). */
  | { kind: "insertHeader"; index: number; name: string; value: string }
  /** SMFIR_CHGHEADER: change the `occurrence`-th field called `name` (1-based); null removes it. */
  | { kind: "changeHeader"; name: string; occurrence: number; value: string | null }
  /** SMFIR_REPLBODY (all its chunks): the new body, spooled. */
  | { kind: "replaceBody"; body: ReplacementBody }
  /** SMFIR_ADDRCPT / SMFIR_ADDRCPT_PAR (ESMTP parameters are recorded, not applied). */
  | { kind: "addRecipient"; address: string; parameters: string | undefined }
  /** SMFIR_DELRCPT. */
  | { kind: "removeRecipient"; address: string }
  /** SMFIR_QUARANTINE. */
  | { kind: "quarantine"; reason: string };

/**
 * A header value as the milter sent it, made ready for the rewriting API (which writes
 * "Name: value"): line breaks in a folded value become CRLF (libmilter milters often fold with a
 * bare LF), and with SMFIP_HDR_LEADSPC negotiated the milter's own leading space is dropped.
 */
export function headerValue(value: string, leadingSpace: boolean): string {
  const text = leadingSpace && (value.startsWith(" ") || value.startsWith("\t")) ? value.slice(1) : value;
  return text.replace(/\r?\n/g, "\r\n");
}

/** The action a modification reply asks for (undefined for replies that are not modifications). */
export function actionOf(
  reply: MilterReply,
  leadingSpace: boolean,
): Exclude<MilterAction, { kind: "replaceBody" }> | undefined {
  const headerValueOf = (value: string) => headerValue(value, leadingSpace);
  switch (reply.type) {
    case "addHeader":
      return { kind: "addHeader", name: reply.name, value: headerValueOf(reply.value) };
    case "insertHeader":
      return { kind: "insertHeader", index: reply.index, name: reply.name, value: headerValueOf(reply.value) };
    case "changeHeader":
      // An empty value removes the field (libmilter's smfi_chgheader with a NULL value sends "").
      return {
        kind: "changeHeader",
        name: reply.name,
        // Index 0 is what old milters send for "the first"; libmilter documents 1-based.
        occurrence: Math.max(1, reply.index),
        value: reply.value.trim() === "" ? null : headerValueOf(reply.value),
      };
    case "addRecipient":
      return { kind: "addRecipient", address: reply.address, parameters: reply.parameters };
    case "deleteRecipient":
      return { kind: "removeRecipient", address: reply.address };
    case "quarantine":
      return { kind: "quarantine", reason: reply.reason };
    default:
      return undefined;
  }
}
