// Debian's postfix package (smtp-source, smtp-sink and the Postfix the durable rows compare with),
// and a throwaway Postfix instance: its own config_directory, queue and Maildir in a temp folder,
// listening on a loopback port, delivering bench.test to one Maildir with virtual(8) — or, with
// `relayTo`, relaying everything to 127.0.0.1:<relayTo> (relayhost, no DNS) with smtp(8).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function ensurePostfixPackage(log: (line: string) => void): string {
  if (!existsSync("/usr/sbin/smtp-source") || !existsSync("/usr/sbin/postfix")) {
    log("installing Debian's postfix package (smtp-source, smtp-sink, postfix) with apt-get");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    // "No configuration": the package installs without setting up or starting a system mailer.
    const selections = spawnSync("debconf-set-selections", {
      input:
        "postfix postfix/main_mailer_type select No configuration\npostfix postfix/mailname string bench.invalid\n",
      env,
    });
    if (selections.status !== 0) log("debconf-set-selections failed; installing anyway");
    for (const args of [
      ["update", "-qq"],
      ["install", "-y", "-qq", "--no-install-recommends", "postfix"],
    ]) {
      const result = spawnSync("apt-get", args, { env, stdio: ["ignore", "ignore", "inherit"] });
      if (result.status !== 0) throw new Error(`apt-get ${args.join(" ")} failed (exit ${result.status}); run as root`);
    }
  }
  const version = spawnSync("postconf", ["-d", "-h", "mail_version"], { encoding: "utf8" }).stdout.trim();
  return version || "unknown";
}

export interface PostfixInstance {
  readonly dir: string;
  readonly port: number;
  readonly maildir: string;
  /** The master process (its children are smtpd, cleanup, qmgr, virtual …). */
  masterPid(): number;
  /** Messages delivered to the Maildir so far. */
  delivered(): number;
  stop(): Promise<void>;
}

function postfix(configDir: string, command: string): void {
  const result = spawnSync("postfix", ["-c", configDir, command], { encoding: "utf8" });
  // Postfix reports to syslog, which a container may not have; its exit code is what we have.
  if (result.status !== 0) throw new Error(`postfix -c ${configDir} ${command} failed (exit ${result.status})`);
}

export async function startPostfix(
  port: number,
  options: { log?: boolean; relayTo?: number } = {},
): Promise<PostfixInstance> {
  const dir = await mkdtemp(join(tmpdir(), "postern-bench-postfix-"));
  // virtual(8) delivers as nobody, who must reach the Maildir.
  await chmod(dir, 0o755);
  const etc = join(dir, "etc");
  const maildir = join(dir, "maildir");
  await mkdir(etc);
  await mkdir(join(dir, "spool"));
  await mkdir(join(dir, "data"));
  await mkdir(maildir);
  await chown(join(dir, "data"), uidOf("postfix"), -1);
  await chown(maildir, 65534, 65534);
  const main = [
    "compatibility_level = 3.6",
    `queue_directory = ${dir}/spool`,
    `data_directory = ${dir}/data`,
    "mail_owner = postfix",
    "setgid_group = postdrop",
    "myhostname = mx.postfix.bench",
    "mydomain = postfix.bench",
    "mydestination =",
    "inet_interfaces = 127.0.0.1",
    "inet_protocols = ipv4",
    "mynetworks = 127.0.0.0/8",
    "alias_maps =",
    "alias_database =",
    "local_recipient_maps =",
    ...(options.relayTo
      ? [
          // Everything from mynetworks goes to one next hop, like Postern's smarthost row:
          // 20 deliveries at once (Postfix's default), no TLS (smtp-sink offers none).
          `relayhost = [127.0.0.1]:${options.relayTo}`,
          "smtp_destination_concurrency_limit = 20",
          "smtp_tls_security_level = none",
          "smtp_dns_support_level = disabled",
        ]
      : [
          "virtual_mailbox_domains = bench.test",
          `virtual_mailbox_base = ${maildir}`,
          // A trailing slash means Maildir; every recipient lands in <base>/user/.
          "virtual_mailbox_maps = static:user/",
          "virtual_uid_maps = static:65534",
          "virtual_gid_maps = static:65534",
        ]),
    // No reverse lookup of the client (like the other servers), no per-client connection cap (one
    // client opens 200 sessions), enough smtpd processes for 200 sessions.
    "smtpd_peername_lookup = no",
    "smtpd_client_connection_count_limit = 0",
    "default_process_limit = 200",
    "biff = no",
    ...(options.log ? [`maillog_file = ${dir}/maillog`, `maillog_file_prefixes = ${dir}`] : []),
  ];
  await writeFile(join(etc, "main.cf"), `${main.join("\n")}\n`);
  // No chroot (the temp queue has none of the files a chroot needs); the services a mail path uses.
  const master = [
    `127.0.0.1:${port} inet n - n - - smtpd`,
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify",
    "flush unix n - n 1000? 0 flush",
    "proxymap unix - - n - - proxymap",
    "showq unix n - n - - showq",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
    "local unix - n n - - local",
    "virtual unix - n n - - virtual",
    "smtp unix - - n - - smtp",
    "relay unix - - n - - smtp",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
  ];
  await writeFile(join(etc, "master.cf"), `${master.join("\n")}\n`);
  postfix(etc, "start");
  const pidFile = join(dir, "spool", "pid", "master.pid");
  const deadline = Date.now() + 10_000;
  while (!existsSync(pidFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  const newDir = join(maildir, "user", "new");
  return {
    dir,
    port,
    maildir,
    masterPid: () => pid,
    delivered: () => (existsSync(newDir) ? readdirSync(newDir).length : 0),
    async stop() {
      try {
        postfix(etc, "stop");
      } finally {
        const until = Date.now() + 10_000;
        while (existsSync(`/proc/${pid}`) && !isZombie(pid) && Date.now() < until) {
          await new Promise((r) => setTimeout(r, 50));
        }
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

function uidOf(user: string): number {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${user}:`));
  if (!line) throw new Error(`no ${user} user: is the postfix package installed?`);
  return Number(line.split(":")[2]);
}
