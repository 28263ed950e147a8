// `postern dkim keygen`: writes a DKIM private key for @postern/dkim's `sign.keys` and prints the
// DNS TXT record to publish, split into strings of at most 255 octets (a 2048-bit RSA key needs two).
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { PosternError } from "@postern/core";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { importOptional } from "../optional-package.ts";
import { UsageError } from "../usage-error.ts";

type DkimModule = typeof import("@postern/dkim");

const options = {
  domain: { type: "string" },
  selector: { type: "string" },
  algorithm: { type: "string", default: "rsa" },
  bits: { type: "string", default: "2048" },
  out: { type: "string", default: "." },
} as const;

const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const isDomain = (value: string) =>
  value
    .replace(/\.$/, "")
    .split(".")
    .every((part) => label.test(part));

async function keygen(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(argv, options);
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const domain = values.domain?.toLowerCase().replace(/\.$/, "");
  const selector = values.selector?.toLowerCase();
  if (!domain || !isDomain(domain)) throw new UsageError("--domain needs a domain name, e.g. --domain example.com");
  if (!selector || !isDomain(selector)) throw new UsageError("--selector needs a selector, e.g. --selector 2026a");
  if (values.algorithm !== "rsa" && values.algorithm !== "ed25519") {
    throw new UsageError(`--algorithm must be rsa or ed25519, got "${values.algorithm}"`);
  }
  const bits = Number(values.bits);
  if (values.algorithm === "rsa" && (!Number.isInteger(bits) || bits < 1024 || bits > 8192)) {
    throw new UsageError(`--bits must be 1024–8192 (2048 recommended), got "${values.bits}"`);
  }

  const { formatTxtRecord, generateDkimKey } = await importOptional<DkimModule>("@postern/dkim", "postern dkim");
  const key = generateDkimKey({ algorithm: values.algorithm, bits });
  const directory = resolve(values.out);
  const keyFile = join(directory, `${domain}.${selector}.key`);
  await mkdir(directory, { recursive: true });
  try {
    // "wx": never overwrite a key that may already be published and signing mail.
    await writeFile(keyFile, key.privateKeyPem, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") {
      throw new PosternError(
        "POSTERN_DKIM_KEY_EXISTS",
        `${keyFile} already exists; choose another --selector or --out (keys are never overwritten)`,
        { cause: error },
      );
    }
    throw error;
  }
  process.stdout.write(
    [
      `Wrote the private key to ${keyFile} (mode 0600).`,
      "",
      "Publish this DNS record:",
      formatTxtRecord(domain, selector, key.record),
      "",
      "Then sign with it (postern.config.ts):",
      `  dkim({ sign: { keys: [{ domain: "${domain}", selector: "${selector}", keyFile: "${keyFile}" }] } })`,
      "",
    ].join("\n"),
  );
  return 0;
}

export const dkim: Command = {
  name: "dkim",
  summary: "DKIM keys: generate a signing key and its DNS record",
  usage: `Usage: postern dkim keygen --domain <domain> --selector <selector> [--algorithm rsa|ed25519] [--bits 2048] [--out <dir>]

Generates a DKIM signing key for @postern/dkim. Writes the private key (PEM, PKCS#8, mode 0600) to
<out>/<domain>.<selector>.key, never overwriting a file, and prints the TXT record to publish at
<selector>._domainkey.<domain>, split into quoted strings of at most 255 octets, plus the config line.
For dual signing, run it twice: once with --algorithm rsa, once with --algorithm ed25519 and another
selector, and list both keys.

Options:
  --domain <domain>      the signing domain (d=), usually your From domain
  --selector <selector>  the selector (s=), e.g. 2026a
  --algorithm <name>     rsa (default) or ed25519 (RFC 8463)
  --bits <n>             RSA key size, 1024–8192 (default 2048)
  --out <dir>            directory for the key file (default: the current directory)
  -h, --help             show this help`,

  async run(argv) {
    const [subcommand, ...rest] = argv;
    if (subcommand === "keygen") return keygen(rest);
    throw new UsageError(subcommand ? `unknown subcommand "${subcommand}"` : "missing subcommand: keygen");
  },
};
