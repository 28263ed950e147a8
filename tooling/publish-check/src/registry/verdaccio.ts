// A private npm registry on loopback for the end-to-end test: Verdaccio from npm, its storage and
// config in a temporary folder, no uplink (a package it was not given is a 404, never a fetch from
// the internet), one user whose token the test's npm config carries. Stopped by PID.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join } from "node:path";

export interface Registry {
  /** "http://127.0.0.1:<port>/" */
  readonly url: string;
  /** A user config for npm (npm_config_userconfig): this registry, and the token to publish with. */
  readonly npmrc: string;
  readonly token: string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

function verdaccioBin(): string {
  const require = createRequire(import.meta.url);
  const manifestPath = require.resolve("verdaccio/package.json");
  const { bin } = require(manifestPath) as { bin: string | Record<string, string> };
  return join(dirname(manifestPath), typeof bin === "string" ? bin : bin.verdaccio!);
}

async function untilAnswering(url: string, child: ChildProcess, output: () => string): Promise<void> {
  for (let tries = 0; tries < 300; tries++) {
    if (child.exitCode !== null) throw new Error(`verdaccio exited ${child.exitCode}:\n${output()}`);
    try {
      if ((await fetch(new URL("-/ping", url))).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`verdaccio did not answer on ${url}:\n${output()}`);
}

export async function startVerdaccio(dir: string): Promise<Registry> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/`;
  const config = join(dir, "config.yaml");
  await writeFile(
    config,
    `storage: ${join(dir, "storage")}
auth:
  htpasswd:
    file: ${join(dir, "htpasswd")}
    max_users: 10
# No uplinks: every package comes from what the test publishes.
uplinks: {}
packages:
  "**":
    access: $all
    publish: $authenticated
    unpublish: $authenticated
max_body_size: 200mb
log: { type: stdout, format: pretty, level: warn }
`,
  );
  const child = spawn(process.execPath, [verdaccioBin(), "--config", config, "--listen", `127.0.0.1:${port}`], {
    cwd: dir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, "exit");
      process.kill(child.pid!, "SIGTERM");
      await exited;
    }
  };
  try {
    await untilAnswering(url, child, () => output);
    // npm adduser's request: creates the user and answers with a token.
    const response = await fetch(new URL("-/user/org.couchdb.user:postern-check", url), {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "postern-check", password: "postern-check-password", type: "user", roles: [] }),
    });
    const { token } = (await response.json()) as { token?: string };
    if (!response.ok || !token) throw new Error(`verdaccio refused the test user (HTTP ${response.status})`);
    const npmrc = join(dir, "npmrc");
    await writeFile(npmrc, `registry=${url}\n//127.0.0.1:${port}/:_authToken=${token}\n`);
    return { url, npmrc, token, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
