// The changes a milter asked for at end of message, in the order it asked, as plain data. They are
// collected while the milter talks and applied afterwards through apply-actions.ts, the one place
// that knows the server's rewriting API.
import type { EsmtpParameters } from "@postern/core";
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
  /** SMFIR_ADDRCPT / SMFIR_ADDRCPT_PAR, with the ESMTP parameters of the latter. */
  | { kind: "addRecipient"; address: string; parameters: EsmtpParameters | undefined }
  /** SMFIR_CHGFROM: a new envelope sender, with its ESMTP parameters (e.g. SRS, VERP). */
  | { kind: "changeSender"; address: string; parameters: EsmtpParameters | undefined }
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

/**
 * ESMTP parameters as a milter sends them ("NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b.example"), in
 * the form MAIL FROM and RCPT TO give them to plugins: keywords upper-cased, a keyword without a
 * value true. Undefined when there are none.
 */
export function esmtpParameters(text: string | undefined): EsmtpParameters | undefined {
  const words = text?.split(/[ \t]+/).filter(Boolean) ?? [];
  if (words.length === 0) return undefined;
  const parameters: Record<string, string | true> = {};
  for (const word of words) {
    const equals = word.indexOf("=");
    if (equals === -1) parameters[word.toUpperCase()] = true;
    else parameters[word.slice(0, equals).toUpperCase()] = word.slice(equals + 1);
  }
  return parameters;
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
      return { kind: "addRecipient", address: reply.address, parameters: esmtpParameters(reply.parameters) };
    case "changeFrom":
      return { kind: "changeSender", address: reply.address, parameters: esmtpParameters(reply.parameters) };
    case "deleteRecipient":
      return { kind: "removeRecipient", address: reply.address };
    case "quarantine":
      return { kind: "quarantine", reason: reply.reason };
    default:
      return undefined;
  }
}
