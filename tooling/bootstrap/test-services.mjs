// Redis and PostgreSQL for `npm test`. Tests use REDIS_URL and DATABASE_URL (defaults
// redis://127.0.0.1:6379 and postgres://postgres@127.0.0.1:5432/test). When a variable is not set
// and nothing answers on the default port — a fresh machine — a private server is started from
// the Debian packages (redis-server, postgresql): its own loopback port, its data in a temporary
// folder, no system service touched, stopped by PID when the tests end. Standard library only.
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

function answers(port) {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function waitUntil(ready, what, child, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ready()) return;
    if (child.exitCode !== null) throw new Error(`${what} exited (${child.exitCode}) before it was ready`);
    if (Date.now() > deadline) throw new Error(`${what} was not ready within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** PostgreSQL refuses to run as root: as root, its processes run as the `postgres` user the package creates. */
function postgresUser() {
  if (process.getuid?.() !== 0) return {};
  const id = (flag) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}

function postgresBin() {
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root)
    ? readdirSync(root).filter((major) => existsSync(join(root, major, "bin/postgres")))
    : [];
  majors.sort((a, b) => Number(b) - Number(a));
  if (majors.length === 0) throw new Error(`no PostgreSQL server under ${root} (Debian's postgresql package)`);
  return join(root, majors[0], "bin");
}

async function startRedis(log) {
  const dir = mkdtempSync(join(tmpdir(), "postern-test-redis-"));
  const port = await freePort();
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: "ignore" },
  );
  await waitUntil(() => answers(port), "redis-server", child);
  log(`started a private Redis on 127.0.0.1:${port} (PID ${child.pid})`);
  return { url: `redis://127.0.0.1:${port}`, child, dir, stopSignal: "SIGTERM" };
}

async function startPostgres(log) {
  const bin = postgresBin();
  const user = postgresUser();
  const dir = mkdtempSync(join(tmpdir(), "postern-test-pg-"));
  if (user.uid !== undefined) chownSync(dir, user.uid, user.gid);
  const data = join(dir, "data");
  execFileSync(join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"], {
    stdio: "ignore",
    ...user,
  });
  const port = await freePort();
  // fsync off: the data is thrown away after the run.
  const child = spawn(
    join(bin, "postgres"),
    ["-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
    { stdio: "ignore", ...user },
  );
  const created = () =>
    spawnSync(join(bin, "createdb"), ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "test"], {
      stdio: "ignore",
    }).status === 0;
  await waitUntil(async () => (await answers(port)) && created(), "PostgreSQL", child);
  log(`started a private PostgreSQL on 127.0.0.1:${port} (PID ${child.pid})`);
  // SIGINT is PostgreSQL's fast shutdown.
  return { url: `postgres://postgres@127.0.0.1:${port}/test`, child, dir, stopSignal: "SIGINT" };
}

/**
 * Returns the environment additions (REDIS_URL, DATABASE_URL of private servers, when needed) and
 * a stop() that ends what was started.
 */
export async function startTestServices(env, log) {
  const started = [];
  const additions = {};
  const stop = async () => {
    for (const service of started.reverse()) {
      if (service.child.exitCode === null && service.child.signalCode === null) {
        const exited = new Promise((resolve) => service.child.once("exit", resolve));
        process.kill(service.child.pid, service.stopSignal);
        await exited;
      }
      rmSync(service.dir, { recursive: true, force: true });
    }
  };
  try {
    if (!env.REDIS_URL && !(await answers(6379))) {
      const redis = await startRedis(log);
      started.push(redis);
      additions.REDIS_URL = redis.url;
    }
    if (!env.DATABASE_URL && !(await answers(5432))) {
      const postgres = await startPostgres(log);
      started.push(postgres);
      additions.DATABASE_URL = postgres.url;
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { env: additions, stop };
}
