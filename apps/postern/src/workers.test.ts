// `postern start --workers N` as an operator runs it: a real primary with real worker processes
// in a fresh working directory, driven over SMTP, stopped and reloaded with signals. Which worker
// served a message is read from the Maildir file name (store-maildir puts the PID in it); which
// worker may accept a connection is decided by stopping the other one (SIGSTOP), so the tests do
// not depend on how the kernel happens to share connections out.
import { once } from "node:events";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { buildMessage, connectSmtp, sendMail } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  freePort,
  killRunningClis,
  makeTempDir,
  type RunningCli,
  removeTempDirs,
  runCli,
  startCli,
} from "./test-support/cli-process.ts";

const packagesDir = resolve(dirname(fileURLToPath(import.meta.url)), "../../../packages");
/** Worker PIDs the tests saw, killed (by PID) after each test in case a primary left one behind. */
const workerPids = new Set<number>();

afterEach(async () => {
  for (const pid of workerPids) {
    try {
      process.kill(pid, "SIGCONT");
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  workerPids.clear();
  await killRunningClis();
  await removeTempDirs();
});

interface Started {
  cli: RunningCli;
  port: number;
  cwd: string;
  pids: number[];
}

async function startWorkers(extraArgs: string[] = [], cwd?: string): Promise<Started> {
  const dir = cwd ?? (await makeTempDir("workers"));
  const port = await freePort();
  const cli = startCli(["start", "--workers", "2", "--port", String(port), ...extraArgs], dir);
  const [, list] = await cli.waitForStderr(/2 workers serving \(pids (\d+, \d+)\)/, 30_000);
  const pids = list!.split(", ").map(Number);
  for (const pid of pids) workerPids.add(pid);
  return { cli, port, cwd: dir, pids };
}

/** PIDs of the processes that stored each message of a mailbox (store-maildir names: …P<pid>Q…). */
async function storedBy(cwd: string, mailbox = "localhost/postmaster"): Promise<number[]> {
  const names = await readdir(join(cwd, "data/maildir", mailbox, "new"));
  return names.map((name) => Number(/P(\d+)Q/.exec(name)?.[1]));
}

async function send(port: number, subject: string): Promise<string> {
  const result = await sendMail({
    port,
    to: "postmaster@localhost",
    raw: buildMessage({ to: "postmaster@localhost", subject }),
  });
  return result.response;
}

/** Sends one message while only worker `pid` can accept: the others are stopped meanwhile. */
async function sendThrough(started: Started, pid: number, subject: string): Promise<string> {
  const others = started.pids.filter((each) => each !== pid);
  for (const other of others) process.kill(other, "SIGSTOP");
  try {
    return await send(started.port, subject);
  } finally {
    for (const other of others) process.kill(other, "SIGCONT");
  }
}

function poolThreads(pid: number): Promise<number> {
  return readdir(`/proc/${pid}/task`).then(async (tasks) => {
    const names = await Promise.all(
      tasks.map((task) => readFile(`/proc/${pid}/task/${task}/comm`, "utf8").catch(() => "")),
    );
    return names.filter((name) => name.trim() === "libuv-worker").length;
  });
}

describe("postern start --workers 2", () => {
  it("serves the listener from both workers, each with the thread pool asked for", async () => {
    const started = await startWorkers(["--thread-pool", "6"]);
    const [first, second] = started.pids as [number, number];
    expect(started.cli.stderr()).toContain(`listening on 127.0.0.1:${started.port} `);
    expect(started.cli.stderr()).toContain("6 libuv threads each");

    expect(await sendThrough(started, first, "via the first worker")).toMatch(/^250 /);
    expect(await sendThrough(started, second, "via the second worker")).toMatch(/^250 /);
    expect((await storedBy(started.cwd)).sort()).toEqual([first, second].sort());

    // libuv starts its whole pool on the first piece of work; both workers have done file work.
    expect(await poolThreads(first)).toBe(6);
    expect(await poolThreads(second)).toBe(6);
  });

  it("replaces a killed worker, and the new one serves", async () => {
    const started = await startWorkers();
    const [first, second] = started.pids as [number, number];
    process.kill(first, "SIGKILL");
    const [, replacement] = await started.cli.waitForStderr(/worker 1 \(pid (\d+)\) serving/, 30_000);
    const pid = Number(replacement);
    workerPids.add(pid);
    expect(started.cli.stderr()).toContain(`worker 1 (pid ${first}) was killed by SIGKILL; starting a new one in`);
    expect(pid).not.toBe(first);

    expect(await sendThrough({ ...started, pids: [pid, second] }, pid, "via the replacement")).toMatch(/^250 /);
    expect(await storedBy(started.cwd)).toEqual([pid]);
  });

  it("on SIGTERM lets a message being received finish, then every worker stops and it exits 0", async () => {
    const started = await startWorkers();
    const client = await connectSmtp(started.port);
    try {
      expect((await client.read()).code).toBe(220);
      await client.command("EHLO client.test");
      expect((await client.command("MAIL FROM:<sender@example.org>")).code).toBe(250);
      expect((await client.command("RCPT TO:<postmaster@localhost>")).code).toBe(250);
      expect((await client.command("DATA")).code).toBe(354);
      const message = buildMessage({ subject: "in flight across workers" });
      client.write(message.subarray(0, 40));
      process.kill(started.cli.pid, "SIGTERM");
      await started.cli.waitForStderr(/SIGTERM received: stopping 2 workers/);
      // Both workers were asked to stop; the one holding this session waits for it.
      await started.cli.waitForStderr(/worker \d\]: stopped/);
      client.write(message.subarray(40));
      expect((await client.command(".")).code).toBe(250);
    } finally {
      client.close();
    }
    const exit = await started.cli.exited(30_000);
    expect(exit.code).toBe(0);
    expect(exit.stderr).toMatch(/postern\[worker 1\]: stopped/);
    expect(exit.stderr).toMatch(/postern\[worker 2\]: stopped/);
    expect(exit.stderr.trimEnd().split("\n").at(-1)).toBe("postern: stopped");
    const stored = await readdir(join(started.cwd, "data/maildir/localhost/postmaster/new"));
    expect(stored).toHaveLength(1);
  });

  it("passes SIGHUP to every worker, which reload and keep serving", async () => {
    const started = await startWorkers();
    process.kill(started.cli.pid, "SIGHUP");
    await started.cli.waitForStderr(/worker 1\]: SIGHUP: configuration reloaded/);
    await started.cli.waitForStderr(/worker 2\]: SIGHUP: configuration reloaded/);
    for (const pid of started.pids) expect(await sendThrough(started, pid, `after reload, ${pid}`)).toMatch(/^250 /);
    expect((await storedBy(started.cwd)).sort()).toEqual([...started.pids].sort());
  });

  it("stops every worker and exits 70 when one keeps dying", async () => {
    const cwd = await makeTempDir("workers");
    // A plugin that cannot set up once ./broken exists: the state a restart does not cure.
    await writeFile(
      join(cwd, "breaks.mjs"),
      `import { existsSync } from "node:fs";
export default () => ({ name: "breaks", setup() { if (existsSync("broken")) throw new Error("broken for good"); }, hooks: {} });
`,
    );
    const port = await freePort();
    await writeFile(
      join(cwd, "postern.yaml"),
      `listeners:
  - port: ${port}
plugins:
  - ./breaks.mjs
  - package: "@postern/recipients"
    options: { domains: [localhost] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`,
    );
    const cli = startCli(["start", "--workers", "2"], cwd);
    const [, list] = await cli.waitForStderr(/2 workers serving \(pids (\d+, \d+)\)/, 30_000);
    const [first] = list!.split(", ").map(Number) as [number];
    await writeFile(join(cwd, "broken"), "");
    process.kill(first, "SIGKILL");
    const exit = await cli.exited(60_000);
    expect(exit.code).toBe(70);
    expect(exit.stderr).toMatch(
      /worker 1 \(pid \d+\) exited with code 1; it died 6 times within 60 s: stopping every worker \(exit 70\)/,
    );
    expect(exit.stderr).toContain("postern[worker 2]: stopped");
    expect(exit.stderr.trimEnd().split("\n").at(-1)).toBe("postern: stopped (exit 70)");
  });

  it("exits 1 naming the problem when the workers cannot listen", async () => {
    const blocker = createServer();
    blocker.listen(0, "127.0.0.1");
    await once(blocker, "listening");
    const { port } = blocker.address() as { port: number };
    try {
      const cwd = await makeTempDir("workers");
      const result = await runCli(["start", "--workers", "2", "--port", String(port)], cwd);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`postern start: listeners.0: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
      expect(result.stderr).toMatch(/worker \d \(pid \d+\) exited with code 1 before it served: stopping/);
      expect(result.stderr).not.toContain("workers serving");
    } finally {
      blocker.close();
    }
  });
});

describe("postern start --thread-pool", () => {
  it("sizes libuv's pool of a single process, and refuses a size that is none", async () => {
    const cwd = await makeTempDir("workers");
    const port = await freePort();
    const cli = startCli(["start", "--thread-pool", "7", "--port", String(port)], cwd);
    await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${port} `));
    expect(await send(port, "pool of 7")).toMatch(/^250 /);
    expect(await poolThreads(cli.pid)).toBe(7);

    const refused = await runCli(["start", "--thread-pool", "0"], cwd);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('--thread-pool: expected a number of threads from 1 to 1024 (got "0")');
  });
});

describe("postern check --workers", () => {
  async function outboundConfig(queue: string): Promise<string> {
    const dir = await makeTempDir("workers");
    await writeFile(
      join(dir, "postern.yaml"),
      `hostname: mx.example.org
listeners:
  - port: 2526
plugins:
  - package: "@postern/recipients"
    options: { domains: [example.org] }
  - package: "@postern/rate-limit"
    options: { limits: [{ kind: messages, limit: 100/1m }] }
  - package: "@postern/outbound"
    options:
      queue: ${queue}
`,
    );
    await mkdir(join(dir, "node_modules/@postern"), { recursive: true });
    for (const name of ["outbound", "rate-limit"]) {
      await symlink(join(packagesDir, name), join(dir, `node_modules/@postern/${name}`), "dir");
    }
    return dir;
  }

  it("refuses an outbound filesystem queue and warns about counters kept per worker", async () => {
    const dir = await outboundConfig("{ type: fs, dir: ./spool }");
    const result = await runCli(["check", "--workers", "2"], dir);
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split("\n")).toEqual([
      "postern.yaml: warning: plugins.1: @postern/rate-limit counts in memory, so each of the 2 workers counts on its own and a limit lets through up to 2 times as much; set redis to share the counters",
      `postern.yaml: plugins.2.options.queue: @postern/outbound's filesystem queue is owned by one process, and --workers 2 starts 2; use the PostgreSQL queue (queue: { type: "postgres", connectionString: … }), which every worker shares, or run one worker`,
      "postern check: 1 error, 1 warning",
    ]);

    // The same config with one process is fine, and start --workers refuses it before forking.
    expect((await runCli(["check"], dir)).code).toBe(0);
    const start = await runCli(["start", "--workers", "2"], dir);
    expect(start.code).toBe(1);
    expect(start.stderr).toContain("postern.yaml: plugins.2.options.queue: @postern/outbound's filesystem queue");
    expect(start.stderr).not.toContain("workers serving");
  });

  it("accepts the PostgreSQL queue, which the workers share", async () => {
    const dir = await outboundConfig("{ type: postgres, connectionString: postgres://127.0.0.1/test }");
    const result = await runCli(["check", "--workers", "2"], dir);
    expect(result.stderr).not.toContain("plugins.2");
    expect(result.code).toBe(0);
  });
});
