// Signing keys: loaded from files at setup (so a missing or unusable key stops the server before
// it listens), grouped by signing domain, and chosen by the domain of the From field.
import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { HeaderList } from "@postern/core";

export interface SigningKeyConfig {
  /** The signing domain (d=). */
  domain: string;
  /** The selector (s=): the key's TXT record is at <selector>._domainkey.<domain>. */
  selector: string;
  /** PEM private key (PKCS#8 or PKCS#1), RSA or Ed25519, e.g. from `postern dkim keygen`. */
  keyFile: string;
}

export interface SigningKey {
  readonly domain: string;
  readonly selector: string;
  readonly algorithm: "rsa-sha256" | "ed25519-sha256";
  readonly privateKey: string;
}

const normalize = (domain: string) => domain.trim().toLowerCase().replace(/\.$/, "");

export async function loadSigningKeys(configs: readonly SigningKeyConfig[]): Promise<Map<string, SigningKey[]>> {
  const byDomain = new Map<string, SigningKey[]>();
  for (const config of configs) {
    const where = `DKIM key ${config.selector}._domainkey.${config.domain} (${config.keyFile})`;
    let pem: string;
    try {
      pem = await readFile(config.keyFile, "utf8");
    } catch (cause) {
      throw new Error(`${where}: cannot read the key file: ${(cause as Error).message}`, { cause });
    }
    let algorithm: SigningKey["algorithm"];
    try {
      const key = createPrivateKey(pem);
      if (key.asymmetricKeyType === "ed25519") algorithm = "ed25519-sha256";
      else if (key.asymmetricKeyType === "rsa") {
        const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
        // RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits.
        if (bits < 1024) throw new Error(`RSA keys must have at least 1024 bits, this one has ${bits}`);
        algorithm = "rsa-sha256";
      } else throw new Error(`expected an RSA or Ed25519 key, got ${key.asymmetricKeyType}`);
    } catch (cause) {
      throw new Error(`${where}: ${(cause as Error).message}`, { cause });
    }
    const domain = normalize(config.domain);
    const list = byDomain.get(domain) ?? [];
    list.push({ domain, selector: config.selector, algorithm, privateKey: pem });
    byDomain.set(domain, list);
  }
  return byDomain;
}

/** The domain of the first address of the From field, lower-cased. */
export function fromDomainOf(headers: HeaderList): string | undefined {
  const from = headers.get("From");
  if (!from) return undefined;
  // Prefer the angle-addr; strip comments and display names otherwise.
  const angle = /<([^>]*)>/.exec(from);
  const address = (angle ? angle[1]! : from.replace(/\([^)]*\)/g, "").split(",")[0]!).trim();
  const at = address.lastIndexOf("@");
  if (at === -1) return undefined;
  const domain = normalize(address.slice(at + 1).replace(/[>\s].*$/, ""));
  return domain || undefined;
}

/**
 * Keys for the From domain: its own, else those of the nearest parent domain (a signature by
 * example.com aligns with mail from news.example.com under DMARC's relaxed alignment).
 */
export function keysFor(keys: ReadonlyMap<string, readonly SigningKey[]>, fromDomain: string): readonly SigningKey[] {
  const labels = fromDomain.split(".");
  for (let index = 0; index < labels.length - 1; index++) {
    const found = keys.get(labels.slice(index).join("."));
    if (found) return found;
  }
  return [];
}
