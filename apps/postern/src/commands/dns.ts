// `postern dns records|check --domain <domain>`: the DNS a mail domain needs — MX, SPF, DKIM (from
// the signing keys of the config), DMARC, MTA-STS (TXT and policy file), TLS-RPT, and the PTR to
// ask the address owner for — printed as zone-file lines, or compared with what is published.
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { type Plugin, PosternError } from "@postern/core";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { configRequestFrom } from "../config-args.ts";
import { dkimPublicKey } from "../dns/dkim-public-key.ts";
import { createLookup } from "../dns/lookup.ts";
import { type DkimKeyInput, type DmarcPolicy, type MtaStsMode, normalizeName, planDns } from "../dns/plan.ts";
import { type CheckLine, verifyDns } from "../dns/verify.ts";
import { formatZone } from "../dns/zone-text.ts";
import { loadConfig } from "../load-config.ts";
import { originOf } from "../plugin-options.ts";
import { UsageError } from "../usage-error.ts";

const options = {
  config: { type: "string", short: "c" },
  domain: { type: "string" },
  mx: { type: "string", multiple: true },
  ip: { type: "string", multiple: true },
  selector: { type: "string" },
  "dkim-key": { type: "string" },
  "report-to": { type: "string" },
  "dmarc-policy": { type: "string", default: "none" },
  "mta-sts-mode": { type: "string", default: "testing" },
  "mta-sts-max-age": { type: "string", default: "604800" },
  policy: { type: "boolean" },
  "dns-server": { type: "string", multiple: true },
  "mta-sts-url": { type: "string" },
  ca: { type: "string" },
  strict: { type: "boolean" },
} as const;

type Values = ReturnType<typeof parseCommandArgs<typeof options>>["values"];

const domainPattern = /^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/i;

function oneOf<T extends string>(value: string, allowed: readonly T[], option: string): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new UsageError(`--${option}: expected ${allowed.join(", ")} (got "${value}")`);
  }
  return value as T;
}

async function readKey(keyFile: string, selector: string): Promise<DkimKeyInput> {
  let pem: string;
  try {
    pem = await readFile(keyFile, "utf8");
  } catch (cause) {
    throw new PosternError(
      "POSTERN_DNS_DKIM_KEY",
      `cannot read the DKIM key ${keyFile} (${(cause as NodeJS.ErrnoException).code})`,
    );
  }
  try {
    return { selector, keyFile, ...dkimPublicKey(pem) };
  } catch (cause) {
    throw new PosternError("POSTERN_DNS_DKIM_KEY", `${keyFile}: ${(cause as Error).message.split("\n", 1)[0]}`);
  }
}

/** The signing keys for `domain` of every @postern/dkim plugin in the config. */
function configuredKeys(plugins: readonly Plugin[], domain: string): { selector: string; keyFile: string }[] {
  return plugins.flatMap((plugin) => {
    const origin = originOf(plugin);
    if (origin?.package !== "@postern/dkim") return [];
    const keys = (origin.options as { sign?: { keys?: { domain?: unknown; selector?: unknown; keyFile?: unknown }[] } })
      ?.sign?.keys;
    return (keys ?? []).flatMap((key) =>
      typeof key.domain === "string" &&
      normalizeName(key.domain) === domain &&
      typeof key.selector === "string" &&
      typeof key.keyFile === "string"
        ? [{ selector: key.selector, keyFile: key.keyFile }]
        : [],
    );
  });
}

async function planFrom(values: Values) {
  const domain = values.domain ? normalizeName(values.domain) : "";
  if (!domainPattern.test(domain))
    throw new UsageError("--domain: expected the mail domain, e.g. --domain example.com");
  if (Boolean(values.selector) !== Boolean(values["dkim-key"])) {
    throw new UsageError("--dkim-key and --selector go together: the key file and the selector it is published under");
  }
  const maxAge = Number(values["mta-sts-max-age"]);
  if (!Number.isInteger(maxAge) || maxAge < 86_400 || maxAge > 31_557_600) {
    throw new UsageError(
      `--mta-sts-max-age: expected seconds, 86400 (a day) to 31557600 (a year) (got "${values["mta-sts-max-age"]}")`,
    );
  }
  for (const ip of values.ip ?? []) {
    if (!/^[\d.]+$|:/.test(ip) || ip.includes("/")) throw new UsageError(`--ip: expected an IP address (got "${ip}")`);
  }
  // Paths on the command line are the caller's; loading the config moves to the config's folder.
  const extraKey = values["dkim-key"] ? resolve(values["dkim-key"]) : undefined;
  const ca = values.ca ? resolve(values.ca) : undefined;
  const loaded = await loadConfig(configRequestFrom({ config: values.config }));
  const keys = [
    ...(await Promise.all(
      configuredKeys(loaded.config.plugins, domain).map((key) => readKey(key.keyFile, key.selector)),
    )),
    ...(extraKey ? [await readKey(extraKey, values.selector!)] : []),
  ];
  const plan = planDns({
    domain,
    mxHosts: values.mx && values.mx.length > 0 ? values.mx : [loaded.config.hostname],
    ips: values.ip ?? [],
    dkim: keys,
    reportTo: values["report-to"] ?? `postmaster@${domain}`,
    dmarcPolicy: oneOf<DmarcPolicy>(values["dmarc-policy"], ["none", "quarantine", "reject"], "dmarc-policy"),
    mtaStsMode: oneOf<MtaStsMode>(values["mta-sts-mode"], ["testing", "enforce"], "mta-sts-mode"),
    mtaStsMaxAge: maxAge,
  });
  return { plan, loaded, ca };
}

function formatCheckLine(line: CheckLine): string {
  return `${line.status.padEnd(7)}  ${line.what}: ${line.detail}`;
}

async function records(values: Values): Promise<number> {
  const { plan, loaded } = await planFrom(values);
  process.stdout.write(values.policy ? plan.mtaSts.policy : formatZone(plan, loaded.source));
  return 0;
}

async function check(values: Values): Promise<number> {
  const { plan, loaded, ca } = await planFrom(values);
  const servers =
    values["dns-server"] && values["dns-server"].length > 0 ? values["dns-server"] : loaded.config.dns.servers;
  let lookup: ReturnType<typeof createLookup>;
  try {
    lookup = createLookup(servers, loaded.config.dns.timeoutMs);
  } catch {
    throw new UsageError(`--dns-server: expected IP addresses with an optional port (got ${servers.join(", ")})`);
  }
  const lines = await verifyDns(plan, lookup, {
    timeoutMs: loaded.config.dns.timeoutMs,
    ...(values["mta-sts-url"] ? { policyUrl: values["mta-sts-url"] } : {}),
    ...(ca ? { ca: await readFile(ca, "utf8") } : {}),
  });
  for (const line of lines) process.stdout.write(`${formatCheckLine(line)}\n`);
  const count = (status: CheckLine["status"]) => lines.filter((line) => line.status === status).length;
  const [good, warnings, errors] = [count("ok"), count("warning"), count("error")];
  process.stderr.write(
    `postern dns check: ${good} ok, ${warnings} warning${warnings === 1 ? "" : "s"}, ${errors} error${errors === 1 ? "" : "s"}\n`,
  );
  return errors > 0 || (values.strict && warnings > 0) ? 1 : 0;
}

export const dnsCommand: Command = {
  name: "dns",
  summary: "print the DNS records a mail domain needs (MX, SPF, DKIM, DMARC, MTA-STS, TLS-RPT, PTR), or check them",
  usage: `Usage: postern dns records --domain <domain> [--ip <address>]... [options]
       postern dns check --domain <domain> [--ip <address>]... [options]

records prints, in zone-file syntax with a comment on each, what to publish for <domain>: MX (the
config's hostname, or --mx), the MX host's A/AAAA (--ip), SPF, a DKIM record for every signing key
of @postern/dkim in the config for that domain (or --dkim-key), DMARC, MTA-STS (the TXT record and
the policy file to serve), TLS-RPT, and the PTR records to ask the address owner for.
check looks each of them up (with the config's DNS servers, or --dns-server) and fetches the
MTA-STS policy over HTTPS; one line per record (ok, warning or error). Exit 1 on any error.

Options:
  -c, --config <file>       config file (default: the first postern.config.* or postern.yaml found)
  --domain <domain>         the mail domain (required)
  --mx <host>               an MX host (repeatable; default: the config's hostname)
  --ip <address>            the MX host's public address (repeatable): A/AAAA, SPF and PTR
  --dkim-key <file>         a DKIM private key (with --selector) besides those in the config
  --selector <selector>     the selector --dkim-key is published under
  --report-to <address>     where DMARC and TLS-RPT reports go (default: postmaster@<domain>)
  --dmarc-policy <p>        none (default; start there), quarantine or reject
  --mta-sts-mode <mode>     testing (default) or enforce
  --mta-sts-max-age <s>     how long senders keep the policy (default 604800, a week)
  --policy                  records: print only the MTA-STS policy file
  --dns-server <ip[:port]>  check: ask this server (repeatable) instead of the config's
  --mta-sts-url <url>       check: fetch the policy here (e.g. before the DNS points at it)
  --ca <file>               check: also trust this CA (PEM) for the policy's web server
  --strict                  check: warnings fail too
  -h, --help                show this help`,

  async run(argv) {
    const [subcommand, ...rest] = argv;
    if (subcommand !== "records" && subcommand !== "check") {
      throw new UsageError(
        subcommand ? `unknown subcommand "${subcommand}"; expected records or check` : "expected records or check",
      );
    }
    const { values, positionals } = parseCommandArgs(rest, options);
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    return subcommand === "records" ? records(values) : check(values);
  },
};
