// TLS files of every listener, read and matched the way the server will use them: the certificate
// parses as PEM, the key parses (unencrypted), the key belongs to the certificate, the certificate
// is not expired and covers the hostname. `start` would otherwise fail on the first bad file, or
// — for a certificate about to expire or naming another host — not fail at all.
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { ServerConfig } from "@postern/core";
import { error, type Finding, warning } from "./finding.ts";

/** A certificate expiring sooner than this is a warning (certbot renews 30 days ahead). */
const expiryWarningDays = 14;
const dayMs = 86_400_000;

interface Pair {
  certificate: string;
  key: string;
  /** Config key of the pair, e.g. "listeners.0" or "listeners.0.certificates.1". */
  at: string;
  /** The listener's default pair, which must cover the hostname. */
  isDefault: boolean;
}

function reason(cause: unknown): string {
  return (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
}

async function readText(path: string, directory: string): Promise<string | { problem: string }> {
  try {
    return await readFile(resolve(directory, path), "utf8");
  } catch (cause) {
    return { problem: `cannot read ${path} (${reason(cause)})` };
  }
}

async function checkPair(pair: Pair, hostname: string, directory: string, now: number): Promise<Finding[]> {
  const findings: Finding[] = [];
  const certKey = `${pair.at}.certificate`;
  const keyKey = `${pair.at}.key`;

  let certificate: X509Certificate | undefined;
  const certText = await readText(pair.certificate, directory);
  if (typeof certText !== "string") findings.push(error(certKey, certText.problem));
  else {
    try {
      certificate = new X509Certificate(certText);
    } catch {
      findings.push(error(certKey, `${pair.certificate} is not a PEM certificate ("-----BEGIN CERTIFICATE-----")`));
    }
  }

  let privateKey: KeyObject | undefined;
  const keyText = await readText(pair.key, directory);
  if (typeof keyText !== "string") findings.push(error(keyKey, keyText.problem));
  else {
    try {
      privateKey = createPrivateKey(keyText);
    } catch {
      findings.push(
        error(
          keyKey,
          `${pair.key} is not a PEM private key (an encrypted key cannot be used: decrypt it with openssl)`,
        ),
      );
    }
    const mode = (await stat(resolve(directory, pair.key))).mode;
    if (mode & 0o004) {
      findings.push(
        warning(keyKey, `${pair.key} is readable by every user (mode ${(mode & 0o777).toString(8)}); chmod 600 or 640`),
      );
    }
  }

  if (certificate && privateKey && !certificate.checkPrivateKey(privateKey)) {
    findings.push(error(keyKey, `${pair.key} is not the key of the certificate in ${pair.certificate}`));
  }
  if (certificate) {
    const validTo = new Date(certificate.validTo);
    const days = Math.floor((validTo.getTime() - now) / dayMs);
    if (validTo.getTime() <= now) {
      findings.push(error(certKey, `${pair.certificate} expired on ${validTo.toISOString().slice(0, 10)}`));
    } else if (days < expiryWarningDays) {
      findings.push(
        warning(certKey, `${pair.certificate} expires in ${days} days (${validTo.toISOString().slice(0, 10)})`),
      );
    }
    if (new Date(certificate.validFrom).getTime() > now) {
      findings.push(error(certKey, `${pair.certificate} is not valid before ${certificate.validFrom}`));
    }
    if (pair.isDefault && certificate.checkHost(hostname) === undefined) {
      const names = certificate.subjectAltName?.replace(/DNS:/g, "") ?? certificate.subject;
      findings.push(
        warning(
          certKey,
          `${pair.certificate} is for ${names}, not for the hostname ${hostname} (clients checking names will refuse it)`,
        ),
      );
    }
  }
  return findings;
}

export async function checkCertificates(config: ServerConfig, directory: string, now = Date.now()): Promise<Finding[]> {
  const pairs: Pair[] = [];
  for (const [index, listener] of config.listeners.entries()) {
    if (listener.tls === "none") continue;
    // The schema makes sure a TLS listener has both; a missing one is reported there.
    if (listener.certificate && listener.key) {
      pairs.push({ certificate: listener.certificate, key: listener.key, at: `listeners.${index}`, isDefault: true });
    }
    for (const [extra, more] of listener.certificates.entries()) {
      pairs.push({ ...more, at: `listeners.${index}.certificates.${extra}`, isDefault: false });
    }
  }
  const results = await Promise.all(pairs.map((pair) => checkPair(pair, config.hostname, directory, now)));
  return results.flat();
}
