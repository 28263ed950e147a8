// DANE for SMTP (RFC 7672, with RFC 7671's updates): which MX hosts of a domain have DNSSEC-secure
// TLSA records, and whether a peer's certificate chain matches them.
//
// Lookups go to the validating resolver (dnssec-resolver.ts). The MX RRset must be secure for
// DANE to apply (§2.2.1); then for each MX host, `_25._tcp.<host>` TLSA:
// - secure, with usable records (DANE-TA(2) or DANE-EE(3); PKIX usages are unusable in SMTP,
//   §3.1.3) → TLS is mandatory and the certificate must match one of them;
// - secure, only unusable records → TLS is mandatory, without authentication (§2.2);
// - secure denial (NXDOMAIN/NODATA with AD) or an insecure answer → no DANE for this host;
// - a failed lookup (SERVFAIL, which a validator answers for bogus data; timeout) → the host is
//   not used (§2.2: it may be under attack), so delivery goes to another host or is deferred.
import { createHash, X509Certificate } from "node:crypto";
import type { DetailedPeerCertificate } from "node:tls";
import { type SecureAnswer, SecureLookupError, type ValidatingResolver } from "./dnssec-resolver.ts";
import { type TlsOutcomes, tlsaString } from "./tls-outcome.ts";

export interface TlsaRecord {
  readonly usage: number;
  readonly selector: number;
  readonly matchingType: number;
  readonly data: Buffer;
}

/** What DANE says about one MX host. */
export type DaneHost =
  | { readonly kind: "none"; readonly why: "insecure" | "no-tlsa" }
  /** TLS required; `records` empty means no usable record (encrypt, but nothing to authenticate). */
  | { readonly kind: "dane"; readonly records: readonly TlsaRecord[] }
  | { readonly kind: "unusable"; readonly reason: string };

/** The DANE facts a next hop carries into the SMTP session. */
export interface DaneRequirement {
  /** Usable TLSA records; empty: TLS without authentication (RFC 7672 §2.2). */
  readonly records: readonly TlsaRecord[];
  /** Names a DANE-TA chain's leaf must carry (the MX host name; RFC 7672 §3.2.3). */
  readonly names: readonly string[];
}

const usable = (record: TlsaRecord) =>
  (record.usage === 2 || record.usage === 3) &&
  (record.selector === 0 || record.selector === 1) &&
  record.matchingType >= 0 &&
  record.matchingType <= 2;

/** How many hosts' TLSA RRsets are remembered for TLS reports (the newest). */
const rememberedHosts = 1000;

export class DanePolicies {
  readonly #resolver: ValidatingResolver;
  readonly #tlsOutcomes: TlsOutcomes | undefined;
  /** The whole TLSA RRset last seen per MX host, usable or not, as a TLS report shows it. */
  readonly #rrsets = new Map<string, string[]>();

  constructor(resolver: ValidatingResolver, tlsOutcomes?: TlsOutcomes) {
    this.#resolver = resolver;
    this.#tlsOutcomes = tlsOutcomes;
  }

  /** Whether the domain's MX RRset (or its absence) is DNSSEC-secure; a failed lookup throws. */
  async mxSecure(domain: string): Promise<boolean> {
    try {
      const answer = await this.#resolver.query(domain, "MX");
      return answer.secure;
    } catch (error) {
      this.#tlsOutcomes?.record(() => ({
        policy: { type: "tlsa", domain, strings: [] },
        result: "dnssec-invalid",
        recipientDomain: domain,
        reasonCode: error instanceof SecureLookupError ? error.code : undefined,
        detail: `MX lookup failed: ${(error as Error).message}`,
      }));
      throw error;
    }
  }

  /** The TLSA records last seen for `name`, in presentation form ("3 1 1 ab…"). */
  policyStrings(name: string): readonly string[] | undefined {
    return this.#rrsets.get(name);
  }

  async host(name: string, port = 25): Promise<DaneHost> {
    let answer: SecureAnswer<{ usage: number; selector: number; matchingType: number; certificate: Buffer }>;
    try {
      answer = await this.#resolver.query(`_${port}._tcp.${name}`, "TLSA");
    } catch (error) {
      const code = error instanceof SecureLookupError ? error.code : "error";
      const reason = `TLSA lookup for ${name} failed (${code}: bogus or unreachable)`;
      // RFC 8460 §3: a DANE policy's domain is its TLSA base domain, the MX host.
      this.#tlsOutcomes?.record(() => ({
        policy: { type: "tlsa", domain: name, strings: [], mxHost: name },
        result: "dnssec-invalid",
        mxHost: name,
        reasonCode: code,
        detail: reason,
      }));
      return { kind: "unusable", reason };
    }
    if (!answer.secure) return { kind: "none", why: "insecure" };
    if (answer.records.length === 0) return { kind: "none", why: "no-tlsa" };
    const all = answer.records.map((record) => ({
      usage: record.usage,
      selector: record.selector,
      matchingType: record.matchingType,
      data: Buffer.from(record.certificate),
    }));
    this.#rrsets.delete(name);
    this.#rrsets.set(name, all.map(tlsaString));
    if (this.#rrsets.size > rememberedHosts) this.#rrsets.delete(this.#rrsets.keys().next().value!);
    return { kind: "dane", records: all.filter(usable) };
  }
}

function digest(matchingType: number, bytes: Buffer): Buffer {
  if (matchingType === 1) return createHash("sha256").update(bytes).digest();
  if (matchingType === 2) return createHash("sha512").update(bytes).digest();
  return bytes;
}

function selected(selector: number, certificate: X509Certificate): Buffer {
  return selector === 0 ? certificate.raw : certificate.publicKey.export({ type: "spki", format: "der" });
}

const matchesRecord = (record: TlsaRecord, certificate: X509Certificate) =>
  digest(record.matchingType, selected(record.selector, certificate)).equals(record.data);

/** The chain the peer sent, leaf first (Node links issuers; a self-signed one points at itself). */
export function peerChain(leaf: DetailedPeerCertificate | undefined): X509Certificate[] {
  const chain: X509Certificate[] = [];
  const seen = new Set<string>();
  let current = leaf;
  while (current?.raw && !seen.has(current.fingerprint256)) {
    seen.add(current.fingerprint256);
    chain.push(new X509Certificate(current.raw));
    current = current.issuerCertificate;
  }
  return chain;
}

/**
 * Why the chain does not satisfy the TLSA records, or undefined when it does. DANE-EE(3) matches
 * the leaf alone — no name, expiry or issuer checks (RFC 7672 §3.1.1). DANE-TA(2) matches a
 * certificate of the chain as trust anchor; the chain up to it must be signed in order and
 * current, and the leaf must name the MX host (§3.1.2, §3.2.3).
 */
export function daneMismatch(requirement: DaneRequirement, chain: readonly X509Certificate[]): string | undefined {
  const leaf = chain[0];
  if (!leaf) return "the peer sent no certificate";
  if (requirement.records.length === 0) return undefined;
  for (const record of requirement.records) {
    if (record.usage === 3 && matchesRecord(record, leaf)) return undefined;
  }
  const now = Date.now();
  for (const record of requirement.records) {
    if (record.usage !== 2) continue;
    const anchor = chain.findIndex((certificate, index) => index > 0 && matchesRecord(record, certificate));
    if (anchor === -1) continue;
    const signed = chain
      .slice(0, anchor)
      .every(
        (certificate, index) =>
          certificate.checkIssued(chain[index + 1]!) && certificate.verify(chain[index + 1]!.publicKey),
      );
    const current = chain
      .slice(0, anchor + 1)
      .every((certificate) => Date.parse(certificate.validFrom) <= now && now <= Date.parse(certificate.validTo));
    const named = requirement.names.some((name) => leaf.checkHost(name, { subject: "default" }) !== undefined);
    if (signed && current && named) return undefined;
  }
  return "the certificate chain matches no TLSA record";
}
