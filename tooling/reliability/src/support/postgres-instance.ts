// A PostgreSQL server of the test's own — initdb into a temporary folder, its own loopback port —
// so a fault test can restart it and kill it without touching the shared server on 5432.
// Debian's binaries live in /usr/lib/postgresql/<major>/bin; PostgreSQL refuses to run as root,
// so as root the server runs as the `postgres` user (uid/gid of the spawned process).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./postern-process.ts";

function binDir(): string {
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((name) => existsSync(join(root, name, "bin", "postgres")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (majors.length === 0) throw new Error(`no PostgreSQL server binaries under ${root} (Debian's postgresql package)`);
  return join(root, majors[0]!, "bin");
}

/** The uid/gid to run as: the postgres user when we are root, ourselves otherwise. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
  return { uid, gid };
}

export interface PostgresInstance {
  readonly port: number;
  readonly url: string;
  /** Fast shutdown (SIGINT: sessions are ended, PostgreSQL's `pg_ctl stop -m fast`), then start. */
  restart(): Promise<void>;
  /** SIGKILL to the postmaster and every backend (a crash); `start()` brings it back. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

async function accepting(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

export async function startPostgres(): Promise<PostgresInstance> {
  const bin = binDir();
  const user = runAs();
  const dir = await mkdtemp(join(tmpdir(), "postern-reliability-pg-"));
  const data = join(dir, "data");
  if (user) chownSync(dir, user.uid, user.gid);
  execFileSync(join(bin, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"], {
    stdio: "ignore",
    ...(user ?? {}),
  });
  const port = await freePort();
  let server: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const start = async (): Promise<void> => {
    if (server && server.exitCode === null && server.signalCode === null) return; // running
    // fsync off: the faults here are process crashes, which keep written pages in the kernel; a
    // flush per commit would only cost the shared machine disk time.
    const child = spawn(
      join(bin, "postgres"),
      [
        "-D",
        data,
        "-p",
        String(port),
        "-k",
        dir,
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
        "-c",
        "max_connections=40",
        "-c",
        "shared_buffers=16MB",
      ],
      // Its own process group, so kill() reaches every backend as a crash would.
      { stdio: "ignore", detached: true, ...(user ?? {}) },
    );
    server = child;
    exited = new Promise((resolve) => child.once("exit", () => resolve()));
    for (let waited = 0; ; waited += 50) {
      if (child.exitCode !== null) {
        // A previous crash's shared memory may still be held for a moment: try again.
        if (waited > 20_000) throw new Error(`PostgreSQL on port ${port} exited at start`);
        await new Promise((resolve) => setTimeout(resolve, 200));
        return start();
      }
      if (await accepting(port)) break;
      if (waited > 30_000) throw new Error(`PostgreSQL on port ${port} did not listen`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Listening is not yet accepting sessions (recovery after a crash): wait for a real query.
    const { default: pg } = await import("pg");
    for (let attempt = 0; ; attempt++) {
      const client = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
      client.on("error", () => undefined);
      try {
        await client.connect();
        await client.query("SELECT 1");
        await client.end();
        return;
      } catch (error) {
        await client.end().catch(() => undefined);
        if (attempt > 300) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };

  const stopWith = async (signal: NodeJS.Signals, group: boolean) => {
    const child = server;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    if (group) process.kill(-child.pid!, signal);
    else child.kill(signal);
    await exited;
    server = undefined;
  };

  await start();
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async restart() {
      await stopWith("SIGINT", false);
      await start();
    },
    async kill() {
      await stopWith("SIGKILL", true);
    },
    start,
    async stop() {
      await stopWith("SIGINT", false);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
