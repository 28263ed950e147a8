// ARC (RFC 8617) with mailauth: validation of the chain the DKIM verifier parsed, and sealing
// for forwarders over the final message with our Authentication-Results as the AAR payload.
import type { DnsResolver, Message } from "@postern/core";
import type { SigningKey } from "@postern/dkim";
import type { ARCData, ARCResult, DKIMVerifyResult } from "mailauth";
import { createSeal, arc as validateArc } from "mailauth/lib/arc/index.js";

export interface ArcResult {
  /** none: no ARC sets; pass: the chain validates; fail: it does not. */
  readonly result: "none" | "pass" | "fail";
  /** The newest instance (i=), 0 when there is no chain. */
  readonly instance: number;
  /** d= of the newest ARC-Seal: who vouches for the chain. */
  readonly sealer: string | undefined;
  readonly comment: string | undefined;
  /** The resinfo for Authentication-Results. */
  readonly authResults: string;
  /** mailauth's result, for sealing (cv= and shouldSeal). */
  readonly validation: ARCResult;
}

export async function verifyArc(
  verification: DKIMVerifyResult,
  options: { resolver: DnsResolver["resolve"]; minKeyBits: number },
): Promise<ArcResult> {
  const data = (verification.arc ?? { chain: [] }) as unknown as ARCData;
  const validation = await validateArc(data, { resolver: options.resolver, minBitLength: options.minKeyBits });
  const result =
    validation.status.result === "pass" || validation.status.result === "fail" ? validation.status.result : "none";
  const sealer = data.lastEntry?.["arc-seal"]?.parsed?.d?.value;
  return {
    result,
    instance: typeof validation.i === "number" ? validation.i : 0,
    sealer: typeof sealer === "string" ? sealer.toLowerCase() : undefined,
    comment: validation.status.comment,
    // mailauth leaves arc=none out of its lenient header; we say it, as RFC 8617 §5.2 reports it.
    authResults: validation.info ?? "arc=none",
    validation,
  };
}

/** The three ARC fields (Seal, Message-Signature, Authentication-Results) as [name, value]. */
export async function sealMessage(
  message: Message,
  arc: ArcResult,
  key: SigningKey,
  authResults: string,
): Promise<[string, string][]> {
  const sealable = arc.result !== "fail" || arc.validation.status.shouldSeal === true;
  if (!sealable) return [];
  const outcome = await createSeal(message.stream(), {
    seal: {
      signingDomain: key.domain,
      selector: key.selector,
      privateKey: key.privateKey,
      algorithm: key.algorithm,
      cv: arc.result,
      authResults,
      signTime: new Date(),
    },
  });
  if (outcome.errors.length > 0) throw new Error(`ARC sealing failed: ${outcome.errors[0]!.err.message}`);
  return outcome.headers.map((field) => {
    const colon = field.indexOf(":");
    return [field.slice(0, colon), field.slice(colon + 1).trimStart()];
  });
}
