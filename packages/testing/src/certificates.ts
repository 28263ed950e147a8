// Self-signed certificates for TLS tests, made with the openssl command (Debian's openssl).
import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestCertificate {
  certificate: string;
  key: string;
  dir: string;
}

/** Writes a self-signed certificate for `names` (the first is the CN) into a new temp folder. */
export async function createTestCertificate(
  names: string[] = ["mx.test", "localhost"],
  options: { dir?: string; days?: number } = {},
): Promise<TestCertificate> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), "postern-cert-")));
  const certificate = join(dir, `${names[0]}.crt`);
  const key = join(dir, `${names[0]}.key`);
  const altNames = names.map((name) => (/^[\d.]+$|:/.test(name) ? `IP:${name}` : `DNS:${name}`)).join(",");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    String(options.days ?? 30),
    "-subj",
    `/CN=${names[0]}`,
    "-addext",
    `subjectAltName=${altNames}`,
    "-keyout",
    key,
    "-out",
    certificate,
  ]);
  return { certificate, key, dir };
}
