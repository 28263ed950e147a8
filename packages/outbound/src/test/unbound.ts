// A real validating resolver for the DANE tests: Debian's unbound on a loopback port, serving test
// zones from auth-zone files and validating them with trust anchors made here. Zones are signed
// with ldns-signzone (ldnsutils) using keys ldns-keygen makes; a test can spoil a signed zone
// (`tamper`) to get bogus answers, or leave a zone unsigned (insecure: no trust anchor covers it).
// Unbound runs in the foreground with its config, logs and keys in a temp folder, and is ended by
// its PID.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { ValidatingResolver } from "../dnssec-resolver.ts";

const run = promisify(execFile);

export interface TestZone {
  /** The zone's name, e.g. "dane.test". */
  name: string;
  /** Zone file lines after the SOA and NS (owner names relative to the zone or absolute). */
  records: string[];
  /** Sign the zone and trust its key (default true); false leaves it insecure. */
  signed?: boolean;
  /** Edits the signed zone file (e.g. changes a record's data so its RRSIG no longer fits: bogus). */
  tamper?: (signedZone: string) => string;
}

export interface Unbound {
  /** "127.0.0.1:port", for `dns.servers` and `dane.resolver`. */
  readonly server: string;
  readonly port: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startUnbound(zones: TestZone[]): Promise<Unbound> {
  const dir = await mkdtemp(join(tmpdir(), "postern-unbound-"));
  const anchors: string[] = [];
  const authZones: string[] = [];
  for (const zone of zones) {
    const file = join(dir, `${zone.name}.zone`);
    await writeFile(
      file,
      [
        `$ORIGIN ${zone.name}.`,
        "$TTL 300",
        `@ IN SOA ns.${zone.name}. hostmaster.${zone.name}. 1 3600 600 86400 300`,
        `@ IN NS ns.${zone.name}.`,
        "ns IN A 127.0.0.1",
        ...zone.records,
        "",
      ].join("\n"),
    );
    let served = file;
    if (zone.signed !== false) {
      const ksk = (await run("ldns-keygen", ["-a", "ECDSAP256SHA256", "-k", zone.name], { cwd: dir })).stdout.trim();
      const zsk = (await run("ldns-keygen", ["-a", "ECDSAP256SHA256", zone.name], { cwd: dir })).stdout.trim();
      await run("ldns-signzone", ["-f", `${file}.signed`, file, zsk, ksk], { cwd: dir });
      served = `${file}.signed`;
      if (zone.tamper) await writeFile(served, zone.tamper(await readFile(served, "utf8")));
      anchors.push((await readFile(join(dir, `${ksk}.ds`), "utf8")).trim());
    }
    authZones.push(
      [
        "auth-zone:",
        `  name: "${zone.name}"`,
        `  zonefile: "${served}"`,
        "  for-downstream: no",
        "  for-upstream: yes",
        "  fallback-enabled: no",
      ].join("\n"),
    );
  }
  await writeFile(join(dir, "anchors.ds"), `${anchors.join("\n")}\n`);
  const port = await freePort();
  const config = join(dir, "unbound.conf");
  await writeFile(
    config,
    [
      "server:",
      "  interface: 127.0.0.1",
      `  port: ${port}`,
      "  do-ip6: no",
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      `  pidfile: "${join(dir, "unbound.pid")}"`,
      "  use-syslog: no",
      `  logfile: "${join(dir, "unbound.log")}"`,
      "  verbosity: 1",
      "  num-threads: 1",
      '  module-config: "validator iterator"',
      `  trust-anchor-file: "${join(dir, "anchors.ds")}"`,
      // .test is a special-use name unbound answers NXDOMAIN for by default (RFC 6761).
      '  local-zone: "test." nodefault',
      "  val-log-level: 2",
      // Nothing may leave the machine: no root hints are ever reachable here anyway.
      "  do-not-query-localhost: no",
      "remote-control:",
      "  control-enable: no",
      ...authZones,
      "",
    ].join("\n"),
  );
  const child: ChildProcess = spawn("unbound", ["-d", "-c", config], { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const server = `127.0.0.1:${port}`;
  const probe = new ValidatingResolver({ server, timeoutMs: 200 });
  let ready = false;
  for (let attempt = 0; attempt < 50 && !ready; attempt++) {
    ready = await probe.query(zones[0]!.name, "SOA").then(
      () => true,
      () => false,
    );
    if (!ready) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (!ready) {
    child.kill();
    const log = await readFile(join(dir, "unbound.log"), "utf8").catch(() => "");
    throw new Error(`unbound did not answer on ${server}: ${log.slice(-500)}`);
  }
  return {
    server,
    port,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
