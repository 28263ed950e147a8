// The repository's two commands as a newcomer types them: `npm start` (the postern command on its
// sources) stops with the signal npm gets, leaving nothing running; `npm test` on a machine that
// lacks the Debian tools stops before running anything, with one line naming them.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { chmod, copyFile, link, mkdir, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, makeTempDir, removeTempDirs } from "./test-support/cli-process.ts";

const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));
const children = new Set<ChildProcess>();

afterEach(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
  }
  children.clear();
  await removeTempDirs();
});

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** Starts `npm start -- --port <port>` for the repository, from another folder; resolves once it listens. */
async function npmStart(port: number): Promise<{ npm: ChildProcess; stderr: () => string; cwd: string }> {
  const cwd = await makeTempDir("npm-start");
  const npm = spawn("npm", ["--prefix", repoRoot, "start", "--", "--port", String(port)], {
    cwd,
    env: { ...process.env, npm_config_update_notifier: "false" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.add(npm);
  let stderr = "";
  npm.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const deadline = Date.now() + 120_000;
  while (!stderr.includes(`listening on 127.0.0.1:${port} `)) {
    if (npm.exitCode !== null) throw new Error(`npm start exited ${npm.exitCode}:\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`npm start did not listen:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { npm, stderr: () => stderr, cwd };
}

describe("npm start", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`stops the server when npm gets ${signal}, and exits when the server has`, async () => {
      const port = await freePort();
      const { npm, stderr } = await npmStart(port);
      const exited = once(npm, "exit");
      process.kill(npm.pid!, signal);
      await exited;
      expect(stderr()).toContain(`postern: ${signal} received: stopping`);
      expect(stderr()).toContain("postern: stopped");
      // Nothing left behind on the port: the server was not orphaned.
      expect(await listening(port)).toBe(false);
    });
  }
});

describe("npm test on a machine without the Debian tools", () => {
  it("stops before fetching or running anything, with one line naming what to install", async () => {
    // A copy of the bootstrap whose package list names a package no machine has.
    const fake = await makeTempDir("bootstrap");
    await mkdir(join(fake, "tooling/bootstrap"), { recursive: true });
    await mkdir(join(fake, "tooling/ci"), { recursive: true });
    for (const file of ["run.mjs", "system-packages.mjs", "test-services.mjs"]) {
      await copyFile(join(repoRoot, "tooling/bootstrap", file), join(fake, "tooling/bootstrap", file));
    }
    await copyFile(join(repoRoot, "package.json"), join(fake, "package.json"));
    await copyFile(join(repoRoot, ".node-version"), join(fake, ".node-version"));
    await writeFile(join(fake, "tooling/ci/debian-packages.txt"), "# test list\nswaks\npostern-no-such-package\n");
    await chmod(fake, 0o755);

    // As root the bootstrap would install with apt-get: run it as an ordinary user (nobody), as a
    // newcomer would, with a Node that user can reach (ours may sit in root's home).
    const root = process.getuid?.() === 0;
    const asUser = root ? { uid: 65534, gid: 65534 } : {};
    let node = process.execPath;
    if (root) {
      node = join(fake, "node");
      await link(process.execPath, node).catch(() => copyFile(process.execPath, node));
    }
    const child = spawn(node, [join(fake, "tooling/bootstrap/run.mjs"), "test"], {
      cwd: fake,
      env: { PATH: process.env.PATH ?? "", HOME: fake, XDG_CACHE_HOME: join(fake, "cache") },
      stdio: ["ignore", "pipe", "pipe"],
      ...asUser,
    });
    children.add(child);
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const [code] = await once(child, "close");
    expect(code).toBe(1);
    expect(output).toBe(
      "[bootstrap] npm test needs these Debian packages: postern-no-such-package; install them with: sudo apt-get install --no-install-recommends postern-no-such-package\n",
    );
  });
});
