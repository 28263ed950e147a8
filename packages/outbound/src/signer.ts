// The seam for signing outgoing mail (DKIM from @postern/dkim, or anything else): a function that
// sees the final bytes once, before the message is queued, and returns header fields to put on
// top. Signing at queue time means every delivery attempt sends the same signed bytes.
export interface SignerEnvelope {
  /** The queue ID. */
  readonly id: string;
  /** Envelope sender ("" for our own delivery reports). */
  readonly from: string;
  readonly recipients: readonly string[];
}

/**
 * Returns header fields to prepend ("DKIM-Signature: v=1; …", folded with CRLF + whitespace if
 * long, with or without the final CRLF), or nothing to leave the message unsigned. Throwing
 * refuses the message with a temporary error (fail closed: never send what should be signed
 * unsigned).
 */
export type MessageSigner = (
  message: Buffer,
  envelope: SignerEnvelope,
) => string | readonly string[] | undefined | Promise<string | readonly string[] | undefined>;

/** Runs the signer and returns the message with its fields on top. */
export async function signMessage(signer: MessageSigner, message: Buffer, envelope: SignerEnvelope): Promise<Buffer> {
  const fields = await signer(message, envelope);
  if (fields === undefined) return message;
  const list = typeof fields === "string" ? [fields] : fields;
  const header = list.map((field) => (field.endsWith("\r\n") ? field : `${field.replace(/\r?\n$/, "")}\r\n`)).join("");
  return Buffer.concat([Buffer.from(header, "utf8"), message]);
}
