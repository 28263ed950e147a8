// The public half of a DKIM signing key, as its TXT record publishes it: p= is the base64
// SubjectPublicKeyInfo for RSA and the raw 32-byte key for Ed25519 (RFC 8463).
import { createPrivateKey, createPublicKey } from "node:crypto";

export interface DkimPublicKey {
  readonly k: "rsa" | "ed25519";
  readonly p: string;
}

export function dkimPublicKey(privateKeyPem: string): DkimPublicKey {
  const privateKey = createPrivateKey(privateKeyPem);
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  const type = privateKey.asymmetricKeyType;
  if (type === "ed25519") return { k: "ed25519", p: spki.subarray(-32).toString("base64") };
  if (type === "rsa") return { k: "rsa", p: spki.toString("base64") };
  throw new Error(`a ${type} key cannot sign DKIM; use RSA or Ed25519 (postern dkim keygen)`);
}

/** The tags of a DKIM, DMARC, MTA-STS or TLS-RPT record ("v=DKIM1; k=rsa; p=…"), names lower-cased. */
export function recordTags(text: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const part of text.split(";")) {
    const equals = part.indexOf("=");
    if (equals <= 0) continue;
    tags.set(part.slice(0, equals).trim().toLowerCase(), part.slice(equals + 1).replace(/\s+/g, ""));
  }
  return tags;
}
