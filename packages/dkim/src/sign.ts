// Signs the final message bytes (prepended fields + original less removed fields) with every
// key of the chosen domain, e.g. one RSA and one Ed25519 selector (RFC 8463 §3 dual signing).
import type { Message } from "@postern/core";
import { dkimSign } from "mailauth";
import type { SigningKey } from "./keys.ts";

export interface SignOptions {
  /** Header fields to sign; mailauth's default list (From, To, Subject, Date, …) when unset. */
  headers: readonly string[] | undefined;
  canonicalization: string;
  /** Adds x= this many seconds after signing. */
  expireAfterSeconds: number | undefined;
}

/** Returns the value of each DKIM-Signature field to prepend, in key order. */
export async function signMessage(
  message: Message,
  keys: readonly SigningKey[],
  options: SignOptions,
): Promise<string[]> {
  const now = new Date();
  const outcome = await dkimSign(message.stream(), {
    // mailauth's types want one key at the top; with signatureData it signs with those only.
    signingDomain: keys[0]!.domain,
    selector: keys[0]!.selector,
    privateKey: keys[0]!.privateKey,
    signTime: now,
    ...(options.expireAfterSeconds ? { expires: new Date(now.getTime() + options.expireAfterSeconds * 1000) } : {}),
    signatureData: keys.map((key) => ({
      signingDomain: key.domain,
      selector: key.selector,
      privateKey: key.privateKey,
      algorithm: key.algorithm,
      canonicalization: options.canonicalization,
      ...(options.headers ? { headerList: [...options.headers] } : {}),
    })),
  });
  if (outcome.errors.length > 0) {
    const first = outcome.errors[0]!;
    throw new Error(
      `DKIM signing with ${first.selector}._domainkey.${first.signingDomain} failed: ${first.err.message}`,
    );
  }
  return outcome.signatures
    .split(/\r\n(?![ \t])/)
    .filter((field) => field.length > 0)
    .map((field) => field.replace(/^DKIM-Signature:\s*/i, ""));
}
