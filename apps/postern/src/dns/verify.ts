// `postern dns check`: what the domain publishes, compared with what it should (plan.ts). Each
// record gets one line — ok, warning or error — saying what was found; a lookup that fails (as
// opposed to finding nothing) is an error of its own, never "missing".
import { networkContains, parseIpAddress, parseIpNetwork } from "@postern/core";
import { recordTags } from "./dkim-public-key.ts";
import type { Lookup } from "./lookup.ts";
import { fetchPolicy, mxMatches, parseMtaStsPolicy } from "./mta-sts-policy.ts";
import { type DnsPlan, normalizeName } from "./plan.ts";

export type CheckStatus = "ok" | "warning" | "error";

export interface CheckLine {
  readonly status: CheckStatus;
  /** The record, e.g. "MX example.com" or "DKIM s1._domainkey.example.com". */
  readonly what: string;
  readonly detail: string;
}

export interface VerifyOptions {
  /** Where to fetch the MTA-STS policy (default: the plan's https://mta-sts.<domain>/.well-known/mta-sts.txt). */
  policyUrl?: string;
  /** Extra CA certificates (PEM) to trust for the policy's web server. */
  ca?: string;
  timeoutMs: number;
}

const ok = (what: string, detail: string): CheckLine => ({ status: "ok", what, detail });
const warning = (what: string, detail: string): CheckLine => ({ status: "warning", what, detail });
const error = (what: string, detail: string): CheckLine => ({ status: "error", what, detail });

const startsWith = (prefix: string) => (text: string) => text.trim().toLowerCase().startsWith(prefix.toLowerCase());

/** Runs one check; a lookup that fails is reported under the check's name. */
async function guarded(what: string, check: () => Promise<CheckLine[]>): Promise<CheckLine[]> {
  try {
    return await check();
  } catch (cause) {
    return [error(what, (cause as Error).message)];
  }
}

async function checkMx(plan: DnsPlan, lookup: Lookup): Promise<CheckLine[]> {
  const what = `MX ${plan.domain}`;
  const records = await lookup.mx(plan.domain);
  if (records.length === 0)
    return [error(what, `none published; publish ${plan.mxHosts.map((host) => `10 ${host}.`).join(", ")}`)];
  const published = records.map((record) => normalizeName(record.exchange));
  const shown = records.map((record) => `${record.priority} ${record.exchange}`).join(", ");
  const missing = plan.mxHosts.filter((host) => !published.includes(host));
  if (missing.length > 0) return [error(what, `publishes ${shown}; expected ${missing.join(", ")} among them`)];
  return [ok(what, shown)];
}

async function checkAddresses(plan: DnsPlan, lookup: Lookup): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  for (const host of plan.mxHosts) {
    const what = `A/AAAA ${host}`;
    const found = await lookup.addresses(host);
    if (found.length === 0) lines.push(error(what, "the MX host has no address"));
    else {
      const missing = plan.ips.filter((ip) => !found.includes(ip));
      lines.push(
        missing.length > 0
          ? error(what, `has ${found.join(", ")}, not ${missing.join(", ")}`)
          : ok(what, found.join(", ")),
      );
    }
  }
  return lines;
}

/** Whether the SPF record's mechanisms (mx, a, ip4, ip6) let `ip` send; undefined when an include decides. */
async function spfAuthorizes(record: string, ip: string, plan: DnsPlan, lookup: Lookup): Promise<boolean | undefined> {
  const address = parseIpAddress(ip);
  if (!address) return false;
  let undecided = false;
  for (const term of record.split(/\s+/).slice(1)) {
    const mechanism = term.replace(/^[+?~-]/, "").toLowerCase();
    const passes = !/^[?~-]/.test(term);
    let matches = false;
    if (mechanism === "mx") {
      for (const mx of await lookup.mx(plan.domain)) {
        if ((await lookup.addresses(mx.exchange)).includes(ip)) matches = true;
      }
    } else if (mechanism === "a") {
      matches = (await lookup.addresses(plan.domain)).includes(ip);
    } else if (mechanism.startsWith("ip4:") || mechanism.startsWith("ip6:")) {
      const network = parseIpNetwork(mechanism.slice(4));
      matches = network !== undefined && networkContains(network, address);
    } else if (mechanism.startsWith("include:") || mechanism.startsWith("redirect=")) {
      undecided = true;
    }
    if (matches) return passes;
  }
  return undecided ? undefined : false;
}

async function checkSpf(plan: DnsPlan, lookup: Lookup): Promise<CheckLine[]> {
  const what = `SPF ${plan.domain}`;
  const records = (await lookup.txt(plan.domain)).filter((text) => /^v=spf1(\s|$)/i.test(text.trim()));
  if (records.length === 0) return [error(what, `none published; publish "${plan.spf.value}"`)];
  if (records.length > 1) {
    return [
      error(
        what,
        `${records.length} SPF records; receivers treat that as a permanent error (RFC 7208 §4.5): merge them into one`,
      ),
    ];
  }
  const record = records[0]!.trim();
  const terms = record.toLowerCase().split(/\s+/);
  if (terms.includes("+all") || terms.includes("all"))
    return [error(what, `"${record}" lets anyone send as ${plan.domain} (+all)`)];
  const lines: CheckLine[] = [];
  for (const ip of plan.ips) {
    const authorized = await spfAuthorizes(record, ip, plan, lookup);
    if (authorized === false) lines.push(error(what, `"${record}" does not let ${ip} (this server) send`));
    if (authorized === undefined)
      lines.push(warning(what, `"${record}": whether ${ip} may send depends on an include (not followed)`));
  }
  if (terms.includes("?all"))
    lines.push(warning(what, `"${record}" ends in ?all: mail from anywhere else is neutral, not failed`));
  return lines.length > 0 ? lines : [ok(what, `"${record}"`)];
}

async function checkDkim(plan: DnsPlan, lookup: Lookup): Promise<CheckLine[]> {
  if (plan.dkim.length === 0) {
    return [
      warning(
        `DKIM ${plan.domain}`,
        "no signing key for this domain in the config (or --dkim-key); nothing to compare",
      ),
    ];
  }
  const lines: CheckLine[] = [];
  for (const key of plan.dkim) {
    const what = `DKIM ${key.name}`;
    const records = (await lookup.txt(key.name)).map(recordTags).filter((tags) => tags.has("p"));
    if (records.length === 0) lines.push(error(what, `none published; publish the record for ${key.keyFile}`));
    else if (records.some((tags) => tags.get("p") === key.p)) lines.push(ok(what, `matches ${key.keyFile}`));
    else if (records.every((tags) => tags.get("p") === ""))
      lines.push(error(what, "the published key is revoked (p= is empty)"));
    else lines.push(error(what, `publishes another key than ${key.keyFile}; mail signed with it fails DKIM`));
  }
  return lines;
}

async function checkDmarc(plan: DnsPlan, lookup: Lookup): Promise<CheckLine[]> {
  const what = `DMARC ${plan.dmarc.name}`;
  const records = (await lookup.txt(plan.dmarc.name)).filter(startsWith("v=DMARC1"));
  if (records.length === 0) return [error(what, `none published; publish "${plan.dmarc.value}"`)];
  if (records.length > 1)
    return [error(what, `${records.length} DMARC records; receivers then apply none (RFC 7489 §6.6.3)`)];
  const tags = recordTags(records[0]!);
  const policy = tags.get("p");
  if (!policy || !["none", "quarantine", "reject"].includes(policy)) {
    return [error(what, `"${records[0]}" has no valid p= (none, quarantine or reject)`)];
  }
  if (!tags.has("rua"))
    return [warning(what, `"${records[0]}" asks for no reports (rua=): you will not see who fails`)];
  return [ok(what, `p=${policy}${policy === "none" ? " (monitoring only)" : ""}`)];
}

async function checkMtaSts(plan: DnsPlan, lookup: Lookup, options: VerifyOptions): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  const what = `MTA-STS ${plan.mtaSts.name}`;
  const records = (await lookup.txt(plan.mtaSts.name)).filter(startsWith("v=STSv1"));
  if (records.length === 0) lines.push(error(what, `none published; publish "${plan.mtaSts.value}"`));
  else if (records.length > 1)
    lines.push(error(what, `${records.length} records; senders then ignore the policy (RFC 8461 §3.1)`));
  else {
    const id = recordTags(records[0]!).get("id");
    lines.push(
      id && /^[A-Za-z0-9]{1,32}$/.test(id)
        ? ok(what, `id=${id}`)
        : error(what, "expected id= with 1–32 letters and digits"),
    );
  }

  const url = options.policyUrl ?? plan.mtaSts.policyUrl;
  const policyWhat = `MTA-STS policy ${url}`;
  let fetched: Awaited<ReturnType<typeof fetchPolicy>>;
  try {
    fetched = await fetchPolicy(url, lookup, {
      timeoutMs: options.timeoutMs,
      ...(options.ca ? { ca: options.ca } : {}),
    });
  } catch (cause) {
    lines.push(error(policyWhat, `cannot fetch it: ${(cause as Error).message}`));
    return lines;
  }
  if (fetched.status !== 200) {
    lines.push(error(policyWhat, `answered HTTP ${fetched.status}; expected 200 with the policy`));
    return lines;
  }
  const policy = parseMtaStsPolicy(fetched.text);
  const problems: string[] = [];
  if (!fetched.contentType?.toLowerCase().startsWith("text/plain"))
    problems.push(`Content-Type is ${fetched.contentType ?? "missing"}, expected text/plain`);
  if (policy.version !== "STSv1") problems.push("version is not STSv1");
  if (!["enforce", "testing", "none"].includes(policy.mode ?? ""))
    problems.push("mode is not enforce, testing or none");
  if (policy.maxAge === undefined || policy.maxAge > 31_557_600) problems.push("max_age is missing or above 31557600");
  const uncovered = plan.mxHosts.filter((host) => !policy.mx.some((pattern) => mxMatches(pattern, host)));
  if (uncovered.length > 0)
    problems.push(`its mx lines do not cover ${uncovered.join(", ")}: senders will refuse to deliver there`);
  lines.push(
    problems.length > 0
      ? error(policyWhat, problems.join("; "))
      : ok(policyWhat, `mode ${policy.mode}, mx ${policy.mx.join(", ")}, max_age ${policy.maxAge}`),
  );
  return lines;
}

async function checkTlsRpt(plan: DnsPlan, lookup: Lookup): Promise<CheckLine[]> {
  const what = `TLS-RPT ${plan.tlsRpt.name}`;
  const records = (await lookup.txt(plan.tlsRpt.name)).filter(startsWith("v=TLSRPTv1"));
  if (records.length === 0) return [error(what, `none published; publish "${plan.tlsRpt.value}"`)];
  if (records.length > 1) return [error(what, `${records.length} records; senders then send no reports (RFC 8460 §3)`)];
  const rua = recordTags(records[0]!).get("rua");
  return rua ? [ok(what, `rua=${rua}`)] : [error(what, `"${records[0]}" has no rua= to send reports to`)];
}

async function checkPtr(plan: DnsPlan, lookup: Lookup): Promise<CheckLine[]> {
  const ips = plan.ips.length > 0 ? plan.ips : plan.mxHosts[0] ? await lookup.addresses(plan.mxHosts[0]) : [];
  const expected = plan.mxHosts[0] ?? plan.domain;
  const lines: CheckLine[] = [];
  for (const ip of ips) {
    const what = `PTR ${ip}`;
    const names = (await lookup.ptr(ip)).map(normalizeName);
    if (names.length === 0) {
      lines.push(
        error(
          what,
          `no reverse name; ask the address's owner for PTR ${expected}. (many receivers refuse mail without one)`,
        ),
      );
      continue;
    }
    const confirmed: string[] = [];
    for (const name of names) if ((await lookup.addresses(name)).includes(ip)) confirmed.push(name);
    if (confirmed.length === 0)
      lines.push(
        error(what, `${names.join(", ")} does not resolve back to ${ip} (forward-confirmed reverse DNS fails)`),
      );
    else if (!confirmed.includes(expected))
      lines.push(warning(what, `${confirmed.join(", ")}, not ${expected} (the name this server greets with)`));
    else lines.push(ok(what, expected));
  }
  return lines;
}

export async function verifyDns(plan: DnsPlan, lookup: Lookup, options: VerifyOptions): Promise<CheckLine[]> {
  const checks = [
    guarded(`MX ${plan.domain}`, () => checkMx(plan, lookup)),
    guarded(`A/AAAA ${plan.mxHosts.join(", ")}`, () => checkAddresses(plan, lookup)),
    guarded(`SPF ${plan.domain}`, () => checkSpf(plan, lookup)),
    guarded(`DKIM ${plan.domain}`, () => checkDkim(plan, lookup)),
    guarded(`DMARC ${plan.dmarc.name}`, () => checkDmarc(plan, lookup)),
    guarded(`MTA-STS ${plan.mtaSts.name}`, () => checkMtaSts(plan, lookup, options)),
    guarded(`TLS-RPT ${plan.tlsRpt.name}`, () => checkTlsRpt(plan, lookup)),
    guarded("PTR", () => checkPtr(plan, lookup)),
  ];
  return (await Promise.all(checks)).flat();
}
