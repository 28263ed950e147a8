// rspamd with Debian's stock configuration (/etc/rspamd: every module and rule set it ships) for the
// benchmark, so its cost is a real one — unlike the tests' minimal configuration. Everything it
// writes goes into a temporary folder (LOCAL_CONFDIR, RUNDIR, DBDIR, LOGDIR redefined with --var);
// override.d/ binds the normal worker to a loopback port, turns off the controller, proxy and fuzzy
// workers and the fuzzy_check module, and points DNS at the benchmark's fake server: names of
// rspamd's map and RBL servers do not resolve there, so nothing leaves the machine. Hyperscan is
// compiled at start (20–40 s on 2 cores).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Daemon, freePort, makeTempDir, startDaemon } from "@postern/testing";

export interface StockRspamd extends Daemon {
  readonly url: string;
  readonly startMs: number;
  log(): Promise<string>;
}

async function answersPing(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/ping`, { signal: AbortSignal.timeout(1000) });
    return response.ok;
  } catch {
    return false;
  }
}

export async function startStockRspamd(options: { dnsServer: string; workers: number }): Promise<StockRspamd> {
  const dir = await makeTempDir("rspamd-stock");
  const port = await freePort();
  const override = join(dir, "override.d");
  await mkdir(override);
  await mkdir(join(dir, "db"));
  const files: Record<string, string> = {
    "options.inc": `dns { nameserver = ["${options.dnsServer}"]; timeout = 1s; retransmits = 1; }\n`,
    "worker-normal.inc": `bind_socket = "127.0.0.1:${port}";\ncount = ${options.workers};\n`,
    "worker-controller.inc": "enabled = false;\n",
    "worker-proxy.inc": "enabled = false;\n",
    "worker-fuzzy.inc": "enabled = false;\n",
    "fuzzy_check.conf": "enabled = false;\n",
    "logging.inc": `type = "file";\nfilename = "${join(dir, "rspamd.log")}";\nlevel = "warning";\n`,
  };
  for (const [name, text] of Object.entries(files)) await writeFile(join(override, name), text);
  const started = Date.now();
  const daemon = await startDaemon({
    name: "rspamd",
    command: "rspamd",
    args: [
      "-f",
      "-i",
      "-c",
      "/etc/rspamd/rspamd.conf",
      `--var=LOCAL_CONFDIR=${dir}`,
      `--var=RUNDIR=${dir}`,
      `--var=DBDIR=${join(dir, "db")}`,
      `--var=LOGDIR=${dir}`,
    ],
    dir,
    startTimeoutMs: 180_000,
    ready: () => answersPing(port),
  });
  return Object.assign(Object.create(daemon) as Daemon, {
    url: `http://127.0.0.1:${port}`,
    startMs: Date.now() - started,
    log: () => readFile(join(dir, "rspamd.log"), "utf8").catch(() => ""),
  }) as StockRspamd;
}
