// Haraka 3, installed from the npm registry into a temporary folder (kept between runs), set up to
// accept every recipient of bench.test and either discard the message (no rDNS lookup, no DNS) or
// run the checks of Postern's pipeline row — spf, dkim verify — and store into a Maildir with
// fsyncs before 250 (haraka-maildir-queue.cjs), with DNS from the bench's fake zone.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const installDir = join(tmpdir(), "postern-bench-haraka");

/** Installs Haraka@3 once; returns the path of its `haraka` entry point and its version. */
export function ensureHaraka(log: (line: string) => void): { bin: string; version: string; packageDir: string } {
  const packageDir = join(installDir, "node_modules", "Haraka");
  if (!existsSync(join(packageDir, "package.json"))) {
    log(`installing Haraka@3 from the npm registry into ${installDir}`);
    mkdirSync(installDir, { recursive: true });
    const npm = spawnSync("npm", ["--version"]).status === 0 ? "npm" : "pnpm";
    const args =
      npm === "npm"
        ? ["install", "--prefix", installDir, "--no-save", "--no-audit", "--no-fund", "--ignore-scripts", "Haraka@3"]
        : ["add", "--dir", installDir, "--ignore-scripts", "Haraka@3"];
    const result = spawnSync(npm, args, { stdio: ["ignore", "ignore", "inherit"] });
    if (result.status !== 0) throw new Error(`could not install Haraka with ${npm} (exit ${result.status})`);
  }
  const manifest = JSON.parse(readFileSync(join(packageDir, "package.json"), "utf8")) as { version: string };
  return { bin: join(packageDir, "bin", "haraka"), version: manifest.version, packageDir };
}

// lookup_rdns answered by a plugin means Haraka does no reverse lookup of the client.
const noRdnsPlugin = `exports.register = function () { this.register_hook('lookup_rdns', 'skip') }
exports.skip = function (next) { next(OK, 'localhost') }
`;

// Haraka's spf plugin skips clients on private addresses — all of loopback. For the pipeline row
// the client must count as public, so that SPF is really evaluated (as Postern's is).
const publicClientPlugin = `exports.register = function () { this.register_hook('lookup_rdns', 'publish') }
exports.publish = function (next, connection) { connection.remote.is_private = false; next() }
`;

/** What a Haraka row runs: discard everything, or the checks of Postern's pipeline into a Maildir. */
export type HarakaSetup = { kind: "discard" } | { kind: "pipeline"; maildir: string };

/** Haraka's flags for compare.ts: the DNS preload (for the pipeline's fake zone), then the entry point. */
export const harakaPreload = fileURLToPath(new URL("./haraka-preload.cjs", import.meta.url));

/** Writes a Haraka config folder listening on 127.0.0.1:port; returns the folder. */
export async function harakaConfig(
  packageDir: string,
  port: number,
  setup: HarakaSetup = { kind: "discard" },
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "postern-bench-haraka-config-"));
  await mkdir(join(dir, "config"));
  await mkdir(join(dir, "plugins"));
  await mkdir(join(dir, "queue"));
  // A config file replaces Haraka's default one whole, so start from the default.
  const connection = readFileSync(join(packageDir, "config", "connection.ini"), "utf8")
    .replace(/^;\s*spool_after=.*$/m, "spool_after=262144")
    .replace(/^bytes=\d+$/m, "bytes=67108864");
  if (!connection.includes("spool_after=262144") || !connection.includes("bytes=67108864")) {
    throw new Error("Haraka's default connection.ini changed: update harakaConfig()");
  }
  const files: Record<string, string> = {
    // nodes=0: one process, no cluster master handing connections to a worker (Haraka's default,
    // nodes=1, adds that hop); like the other Node servers in the table.
    "config/smtp.ini": `listen=127.0.0.1:${port}\nnodes=0\ninactivity_timeout=300\n`,
    "config/me": "mx.haraka.bench\n",
    "config/plugins":
      setup.kind === "discard"
        ? "bench_no_rdns\nrcpt_to.in_host_list\nqueue/discard\n"
        : // The same checks as Postern's pipeline row where Haraka has them (spf, dkim verify),
          // and a Maildir queue that fsyncs before 250.
          "bench_public_client\nbench_no_rdns\nrcpt_to.in_host_list\nspf\ndkim\nbench_maildir\n",
    "config/host_list": "bench.test\n",
    "config/log.ini": "[main]\nlevel=warn\ntimestamps=false\nformat=default\n",
    // Spool messages over 256 KB to disk, as Postern does (Haraka's default keeps them in memory).
    "config/connection.ini": connection,
    "plugins/bench_no_rdns.js": noRdnsPlugin,
    ...(setup.kind === "pipeline"
      ? {
          "plugins/bench_public_client.js": publicClientPlugin,
          "plugins/bench_maildir.js": readFileSync(
            fileURLToPath(new URL("./haraka-maildir-queue.cjs", import.meta.url)),
            "utf8",
          ),
          "config/bench_maildir_root": `${setup.maildir}\n`,
          // Verify only (the default enables verify; signing stays off).
          "config/dkim.ini": "[sign]\nenabled=false\n\n[verify]\nenabled=true\n",
        }
      : {}),
  };
  for (const [path, text] of Object.entries(files)) await writeFile(join(dir, path), text);
  return dir;
}
