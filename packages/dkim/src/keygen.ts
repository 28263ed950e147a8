// Key generation for `postern dkim keygen`: a private key (PEM, PKCS#8) and the DNS TXT record
// publishing its public half, split into strings of at most 255 octets (RFC 1035 §3.3.14) as a
// 2048-bit RSA key needs.
import { generateKeyPairSync } from "node:crypto";

export type DkimKeyAlgorithm = "rsa" | "ed25519";

export interface GeneratedDkimKey {
  readonly algorithm: DkimKeyAlgorithm;
  /** PKCS#8 PEM: the file to give `sign.keys[].keyFile`. */
  readonly privateKeyPem: string;
  /** The p= value: base64 SubjectPublicKeyInfo for RSA, the raw 32-byte key for Ed25519 (RFC 8463). */
  readonly publicKey: string;
  /** The TXT record's text, e.g. "v=DKIM1; k=rsa; p=MIIB…". */
  readonly record: string;
}

export function generateDkimKey(options: { algorithm?: DkimKeyAlgorithm; bits?: number } = {}): GeneratedDkimKey {
  const algorithm = options.algorithm ?? "rsa";
  if (algorithm === "ed25519") {
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    // The SubjectPublicKeyInfo of an Ed25519 key ends with the 32 raw key bytes.
    const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
    const p = raw.toString("base64");
    return {
      algorithm,
      privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
      publicKey: p,
      record: `v=DKIM1; k=ed25519; p=${p}`,
    };
  }
  const bits = options.bits ?? 2048;
  if (!Number.isInteger(bits) || bits < 1024 || bits > 8192) {
    throw new RangeError(`RSA key size must be 1024–8192 bits (2048 recommended), got ${bits}`);
  }
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: bits });
  const p = publicKey.export({ format: "der", type: "spki" }).toString("base64");
  return {
    algorithm,
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKey: p,
    record: `v=DKIM1; k=rsa; p=${p}`,
  };
}

/** Splits a TXT value into character-strings of at most `max` octets (the record is ASCII). */
export function splitTxtValue(value: string, max = 255): string[] {
  const parts: string[] = [];
  for (let offset = 0; offset < value.length; offset += max) parts.push(value.slice(offset, offset + max));
  return parts.length > 0 ? parts : [""];
}

/** The record in zone-file syntax, one quoted string per line when it needs several. */
export function formatTxtRecord(domain: string, selector: string, record: string): string {
  const name = `${selector}._domainkey.${domain.replace(/\.$/, "")}.`;
  const parts = splitTxtValue(record).map((part) => `"${part}"`);
  if (parts.length === 1) return `${name} IN TXT ${parts[0]}`;
  return `${name} IN TXT (\n  ${parts.join("\n  ")} )`;
}
