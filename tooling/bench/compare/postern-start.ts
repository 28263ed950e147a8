// The real `postern start` command as compare.ts measures it: a site folder with a postern.yaml,
// started with `--workers N` (1: the process serves alone; more: a primary and N workers sharing
// the listener), so the rows measure what an operator runs, thread pool sizing included.
// CPU and memory are the whole process tree's (primary and workers).
//   discard: a local plugin claiming every recipient and answering the queue hook with accept()
//   maildir: @postern/recipients + @postern/store-maildir (fsync of the file and of new/ before 250)
import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { exited, freePort, type StartResult, terminate } from "./launch.ts";

const cli = fileURLToPath(new URL("../../../apps/postern/src/cli.ts", import.meta.url));

const discardPlugin = `import { accept } from "@postern/core";
export default () => ({
  name: "bench:discard",
  hooks: { rcptTo: () => accept({ route: "local" }), queue: () => accept() },
});
`;

function config(mode: "discard" | "maildir", port: number, dnsServer: string): string {
  const plugins =
    mode === "discard"
      ? "  - ./discard.mjs\n"
      : `  - package: "@postern/recipients"
    options: { domains: [bench.test] }
  - package: "@postern/store-maildir"
    options: { root: ./maildir }
`;
  return `hostname: mx.bench.test
listeners:
  - address: 127.0.0.1
    port: ${port}
    greetingDelayMs: 0
limits:
  maxMessageSize: 64MB
dns:
  servers: ["${dnsServer}"]
  timeoutMs: 2000
log:
  level: warn
spoolDir: ./spool
plugins:
${plugins}`;
}

export interface PosternStartOptions {
  mode: "discard" | "maildir";
  workers: number;
  dnsServer: string;
  /** More arguments for `postern start` (e.g. --thread-pool 4). */
  args?: string[];
}

/** Starts `postern start --workers N` in a fresh site folder and waits until it serves. */
export async function startPosternCommand(options: PosternStartOptions): Promise<StartResult> {
  const site = await mkdtemp(join(tmpdir(), "postern-bench-start-"));
  const port = await freePort();
  await writeFile(join(site, "postern.yaml"), config(options.mode, port, options.dnsServer));
  if (options.mode === "discard") await writeFile(join(site, "discard.mjs"), discardPlugin);
  else await mkdir(join(site, "maildir"));
  const child: ChildProcess = spawn(
    "sh",
    [
      "-c",
      'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"',
      "sh",
      process.execPath,
      "--conditions=dev-source",
      cli,
      "start",
      "--workers",
      String(options.workers),
      ...(options.args ?? []),
    ],
    { cwd: site, env: { ...process.env, NODE_OPTIONS: "" }, stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr!.setEncoding("utf8");
  const serving = options.workers > 1 ? /workers serving/ : /listening on /;
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: string) => {
      stderr += chunk;
      if (serving.test(stderr)) {
        child.stderr!.off("data", onData);
        // Keep draining stderr, or a chatty server would block on a full pipe.
        child.stderr!.resume();
        resolve();
      }
    };
    child.stderr!.on("data", onData);
    child.once("exit", (code) => reject(new Error(`postern start exited (${code}) before serving:\n${stderr}`)));
  });
  return {
    port,
    pid: child.pid!,
    multiProcess: options.workers > 1,
    ...(options.mode === "maildir" ? { maildirRoot: join(site, "maildir") } : {}),
    async stop() {
      await terminate(child, "SIGTERM");
      await exited(child, 5000);
      await rm(site, { recursive: true, force: true });
    },
  };
}
