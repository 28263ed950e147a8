// The certificates of one TLS listener: the default pair plus more chosen by the host name the
// client asks for (SNI). Each pair is checked when it loads (readable, PEM, key matches the
// certificate, the cipher list means something to OpenSSL), so a bad file is one clear error at
// startup instead of a failed handshake later. A reload builds new contexts and swaps them in
// place: new connections get the new certificate, open sessions keep the one they negotiated.
import { createHash, createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createSecureContext, type SecureContext, type TLSSocket } from "node:tls";
import { domainToASCII } from "node:url";
import { PosternError } from "./errors.ts";
import type { ClientCertificate } from "./session.ts";

/** TLS 1.0 and 1.1 are never offered (RFC 8996). */
export type TlsVersion = "TLSv1.2" | "TLSv1.3";

/**
 * TLS 1.2 ciphers when the listener names none: AEAD with forward secrecy only (Mozilla's
 * "intermediate" list), no CBC. TLS 1.3 keeps OpenSSL's suites, which are all AEAD.
 */
export const defaultCiphers: string = [
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "DHE-RSA-AES128-GCM-SHA256",
  "DHE-RSA-AES256-GCM-SHA384",
  "DHE-RSA-CHACHA20-POLY1305",
].join(":");

export interface CertificateFiles {
  /** PEM certificate, optionally followed by its chain (fullchain.pem). */
  certificate: string;
  /** PEM private key, unencrypted. */
  key: string;
}

export interface ListenerTlsSettings {
  /** The listener's name, for errors and logs. */
  listener: string;
  /** The first pair is the default: served without SNI, or when no certificate covers the name asked for. */
  certificates: readonly CertificateFiles[];
  minVersion: TlsVersion;
  /** OpenSSL cipher list (TLS 1.2 ciphers and TLS 1.3 suites); `defaultCiphers` when undefined. */
  ciphers: string | undefined;
  /** Ask the client for a certificate; it is recorded, never required. */
  requestClientCertificate: boolean;
}

/** What a loaded certificate serves, for logs. */
export interface CertificateSummary {
  file: string;
  names: string[];
  validTo: Date;
  expired: boolean;
}

interface LoadedCertificate {
  files: CertificateFiles;
  key: Buffer;
  cert: Buffer;
  context: SecureContext;
  /** Lower-case ASCII DNS names the certificate covers; wildcards keep their "*.". */
  names: string[];
  validTo: Date;
}

/** The part of smtp-server that holds the default context ("*") its sockets start with. */
export interface SecureContextHolder {
  secureContext: Map<string, SecureContext>;
}

function tlsError(settings: ListenerTlsSettings, message: string, cause?: unknown): PosternError {
  return new PosternError("POSTERN_TLS_FILES", `listener ${settings.listener}: ${message}`, { cause });
}

function firstLine(error: unknown): string {
  return String((error as Error)?.message ?? error).split("\n", 1)[0]!;
}

/** Host names lower-case and in ASCII (punycode), the form certificates carry. */
export function normalizeHostname(name: string): string {
  const lower = name.trim().toLowerCase().replace(/\.$/, "");
  if (lower.startsWith("*.")) return `*.${domainToASCII(lower.slice(2)) || lower.slice(2)}`;
  return domainToASCII(lower) || lower;
}

function certificateNames(x509: X509Certificate): string[] {
  const names = [...(x509.subjectAltName ?? "").matchAll(/(?:^|,\s*)DNS:("?)([^,"]+)\1/g)].map((match) => match[2]!);
  if (names.length === 0) {
    // No subjectAltName: the common name is the only name (legacy certificates).
    const common = /^CN=(.+)$/m.exec(x509.subject)?.[1];
    if (common) names.push(common);
  }
  return names.map(normalizeHostname);
}

async function readPem(settings: ListenerTlsSettings, path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw tlsError(settings, `cannot read the TLS ${what} file ${path}: ${firstLine(cause)}`, cause);
  }
}

function sessionIdContext(listener: string): string {
  // Needed for session resumption when client certificates are requested; per listener.
  return createHash("sha256").update(`postern:${listener}`).digest("hex").slice(0, 32);
}

async function loadCertificate(settings: ListenerTlsSettings, files: CertificateFiles): Promise<LoadedCertificate> {
  const cert = await readPem(settings, files.certificate, "certificate");
  const key = await readPem(settings, files.key, "key");
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (cause) {
    throw tlsError(settings, `${files.certificate} is not a PEM certificate (${firstLine(cause)})`, cause);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (cause) {
    if ((cause as { code?: string }).code === "ERR_MISSING_PASSPHRASE") {
      throw tlsError(
        settings,
        `the TLS key ${files.key} is encrypted; Postern needs it without a passphrase (openssl pkey -in <encrypted> -out ${files.key})`,
        cause,
      );
    }
    throw tlsError(settings, `${files.key} is not a PEM private key (${firstLine(cause)})`, cause);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw tlsError(
      settings,
      `the TLS key ${files.key} does not match the certificate ${files.certificate} (is it the key of another certificate?)`,
    );
  }
  let context: SecureContext;
  try {
    context = createSecureContext({
      key,
      cert,
      minVersion: settings.minVersion,
      ciphers: settings.ciphers ?? defaultCiphers,
      honorCipherOrder: true,
      sessionIdContext: sessionIdContext(settings.listener),
    });
  } catch (cause) {
    if (settings.ciphers && /cipher/i.test(firstLine(cause))) {
      throw tlsError(
        settings,
        `ciphers "${settings.ciphers}" selects no cipher OpenSSL knows (${firstLine(cause)})`,
        cause,
      );
    }
    throw tlsError(settings, `cannot use ${files.certificate} with ${files.key}: ${firstLine(cause)}`, cause);
  }
  return { files, key, cert, context, names: certificateNames(x509), validTo: new Date(x509.validTo) };
}

function covers(pattern: string, name: string): boolean {
  if (pattern === name) return true;
  // RFC 6125 §6.4.3: a wildcard stands for exactly one whole left-most label.
  if (!pattern.startsWith("*.")) return false;
  const dot = name.indexOf(".");
  return dot > 0 && name.slice(dot + 1) === pattern.slice(2);
}

export class ListenerTls {
  readonly settings: ListenerTlsSettings;
  #loaded: LoadedCertificate[];
  readonly #holders = new Set<SecureContextHolder>();

  private constructor(settings: ListenerTlsSettings, loaded: LoadedCertificate[]) {
    this.settings = settings;
    this.#loaded = loaded;
  }

  /** Loads and checks every certificate of the listener; throws a PosternError naming the file. */
  static async load(settings: ListenerTlsSettings): Promise<ListenerTls> {
    return new ListenerTls(settings, await ListenerTls.#loadAll(settings));
  }

  static async #loadAll(settings: ListenerTlsSettings): Promise<LoadedCertificate[]> {
    if (settings.certificates.length === 0) throw tlsError(settings, "no certificate configured");
    const loaded: LoadedCertificate[] = [];
    for (const files of settings.certificates) loaded.push(await loadCertificate(settings, files));
    return loaded;
  }

  /** Every file the listener reads, for watching. */
  get files(): string[] {
    return this.settings.certificates.flatMap((pair) => [pair.certificate, pair.key]);
  }

  get certificates(): CertificateSummary[] {
    const now = Date.now();
    return this.#loaded.map((loaded) => ({
      file: loaded.files.certificate,
      names: loaded.names,
      validTo: loaded.validTo,
      expired: loaded.validTo.getTime() < now,
    }));
  }

  /** The context for a name the client asked for: an exact name first, then a wildcard, else the default. */
  select(servername: string | undefined): SecureContext {
    const loaded = this.#loaded;
    if (servername) {
      const name = normalizeHostname(servername);
      const match =
        loaded.find((entry) => entry.names.includes(name)) ??
        loaded.find((entry) => entry.names.some((pattern) => covers(pattern, name)));
      if (match) return match.context;
    }
    return loaded[0]!.context;
  }

  /** smtp-server options: the default pair, the protocol floor, ciphers and SNI selection. */
  smtpOptions() {
    const first = this.#loaded[0]!;
    return {
      key: first.key,
      cert: first.cert,
      minVersion: this.settings.minVersion,
      ciphers: this.settings.ciphers ?? defaultCiphers,
      honorCipherOrder: true,
      sessionIdContext: sessionIdContext(this.settings.listener),
      requestCert: this.settings.requestClientCertificate,
      rejectUnauthorized: false,
      SNICallback: (servername: string, callback: (error: Error | null, context?: SecureContext) => void) =>
        callback(null, this.select(servername)),
    };
  }

  /** Keeps the server's default context ("*", used when the client sends no SNI) in step with reloads. */
  attach(holder: SecureContextHolder): void {
    this.#holders.add(holder);
    holder.secureContext.set("*", this.select(undefined));
  }

  /**
   * Loads every certificate again and swaps them in when all are good; on any problem the
   * current ones stay and the error is thrown. Open TLS sessions are not touched.
   */
  async reload(): Promise<void> {
    this.#loaded = await ListenerTls.#loadAll(this.settings);
    for (const holder of this.#holders) holder.secureContext.set("*", this.select(undefined));
  }
}

/** The client certificate of a TLS session, if the client sent one. */
export function clientCertificateOf(socket: TLSSocket): ClientCertificate | undefined {
  const peer = socket.getPeerCertificate?.();
  if (!peer?.raw || peer.raw.length === 0) return undefined;
  const certificate = new X509Certificate(peer.raw);
  return {
    subject: certificate.subject.replace(/\n/g, ", "),
    issuer: certificate.issuer.replace(/\n/g, ", "),
    fingerprint256: certificate.fingerprint256,
    validTo: new Date(certificate.validTo),
    authorized: socket.authorized === true,
  };
}
