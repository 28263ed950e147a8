#!/usr/bin/env node
// The README's two commands, `npm start` and `npm test`, land here. This file runs on whatever Node
// the machine has (Node 20 on a bare machine), so it uses nothing but Node's standard library.
//
// It makes sure the pinned toolchain is present — Node from `.node-version` and pnpm from
// `packageManager` — fetching both from the npm registry into a cache outside the repo when the
// machine lacks them, installs the workspace, and hands over to turbo (test) or the `postern`
// command (start). With Node >= 22.19 and the pinned pnpm already present nothing is fetched.
// For `test` it first makes sure the Debian packages the tests drive are there (installing them
// as root, else stopping with one line: system-packages.mjs) and that Redis and PostgreSQL answer
// (starting private ones on a fresh machine: test-services.mjs).
//
// Signals: SIGINT, SIGTERM and SIGHUP go to the command it runs, and it exits as that command did
// (with its code, or killed by the same signal), so `timeout 60 npm start` or a kill of npm stops
// the server. The package.json scripts `exec` this file so npm's own forwarding reaches it
// directly; should the process that started it die anyway, it stops the command itself.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { BootstrapStop, ensureSystemPackages } from "./system-packages.mjs";
import { startTestServices } from "./test-services.mjs";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const rootManifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8"));
const pinnedNode = readFileSync(join(repoRoot, ".node-version"), "utf8").trim();
const pinnedPnpm = String(rootManifest.packageManager).replace(/^pnpm@/, "");
const minimumNode = [22, 19];
const cacheRoot = join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "postern", "toolchain");

function log(message) {
  process.stderr.write(`[bootstrap] ${message}\n`);
}

function nodeIsRecentEnough(version) {
  const [major, minor] = version.replace(/^v/, "").split(".").map(Number);
  return major > minimumNode[0] || (major === minimumNode[0] && minor >= minimumNode[1]);
}

/** Installs one npm package into its own folder under the cache, once. */
function fetchIntoCache(folderName, spec) {
  const prefix = join(cacheRoot, folderName);
  if (!existsSync(join(prefix, "node_modules"))) {
    log(`fetching ${spec} from the npm registry into ${prefix}`);
    mkdirSync(prefix, { recursive: true });
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const result = spawnSync(
      npm,
      ["install", "--prefix", prefix, "--no-save", "--no-audit", "--no-fund", "--loglevel=error", spec],
      { stdio: "inherit" },
    );
    if (result.status !== 0) {
      throw new Error(`could not install ${spec} from the npm registry (npm exited ${result.status})`);
    }
  }
  return prefix;
}

function nodeBinary() {
  if (nodeIsRecentEnough(process.version)) return process.execPath;
  // The `node` package on npm ships Node builds as node-<platform>-<arch> packages; taking that
  // package directly avoids the `node` package's postinstall, which itself calls npm.
  const platform = process.platform === "win32" ? "win" : process.platform;
  const packageName = `node-${platform}-${process.arch}`;
  const prefix = fetchIntoCache(`node-${pinnedNode}`, `${packageName}@${pinnedNode}`);
  const binary = join(prefix, "node_modules", packageName, "bin", "node");
  if (!existsSync(binary)) throw new Error(`${packageName}@${pinnedNode} did not contain bin/node`);
  return binary;
}

function pnpmEntry() {
  const agent = process.env.npm_config_user_agent ?? "";
  if (agent.startsWith(`pnpm/${pinnedPnpm} `) && process.env.npm_execpath) return process.env.npm_execpath;
  const prefix = fetchIntoCache(`pnpm-${pinnedPnpm}`, `pnpm@${pinnedPnpm}`);
  return join(prefix, "node_modules", "pnpm", "bin", "pnpm.cjs");
}

const forwardedSignals = ["SIGINT", "SIGTERM", "SIGHUP"];

/** Runs a child to its end, handing it our signals; resolves with its exit code or signal. */
function run(node, args, env, cwd = repoRoot) {
  return new Promise((resolvePromise) => {
    const child = spawn(node, args, { cwd, env, stdio: "inherit" });
    const forward = (signal) => child.kill(signal);
    for (const signal of forwardedSignals) process.on(signal, forward);
    // Our parent gone (a shell killed without passing the signal on): stop the child, as a
    // terminal's hang-up would.
    const parent = process.ppid;
    const orphanWatch = setInterval(() => {
      if (process.ppid !== parent) child.kill("SIGTERM");
    }, 1000);
    orphanWatch.unref();
    child.on("exit", (code, signal) => {
      clearInterval(orphanWatch);
      for (const name of forwardedSignals) process.off(name, forward);
      resolvePromise({ code, signal });
    });
  });
}

/** The installed workspace matches the lockfile (pnpm keeps a copy of what it installed). */
function installedIsCurrent() {
  const installed = join(repoRoot, "node_modules/.pnpm/lock.yaml");
  return (
    existsSync(installed) && readFileSync(installed, "utf8") === readFileSync(join(repoRoot, "pnpm-lock.yaml"), "utf8")
  );
}

/** Exits the way the child did: its code, or the same signal (handlers removed, so it is fatal). */
function exitLike({ code, signal }) {
  if (signal) {
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
}

async function main() {
  const [command = "test", ...rest] = process.argv.slice(2);
  if (command !== "test" && command !== "start") {
    log(`unknown command "${command}"; expected "start" or "test"`);
    return { code: 2, signal: null };
  }
  // Before fetching or running anything: a machine without the Debian tools stops here, in one line.
  if (command === "test") ensureSystemPackages(repoRoot, log);
  const node = nodeBinary();
  const pnpm = pnpmEntry();
  const separator = process.platform === "win32" ? ";" : ":";
  // turbo runs each package's scripts through the `pnpm` it finds on PATH, so both the pinned
  // Node and the pinned pnpm go first.
  const pnpmBin = join(dirname(dirname(dirname(pnpm))), ".bin");
  const env = {
    ...process.env,
    PATH: [dirname(node), ...(existsSync(join(pnpmBin, "pnpm")) ? [pnpmBin] : []), process.env.PATH ?? ""].join(
      separator,
    ),
    // Keep pnpm's own update check and corepack out of the way; neither can work offline.
    npm_config_update_notifier: "false",
    COREPACK_ENABLE_STRICT: "0",
  };

  // `npm test` always installs (a lockfile out of step with a package.json must fail here, as in
  // CI); `npm start` skips an install that would change nothing.
  if (command === "test" || !installedIsCurrent()) {
    const install = await run(node, [pnpm, "install", "--frozen-lockfile", "--prefer-offline"], env);
    if (install.code !== 0) return install;
  }

  if (command === "start") {
    // Run the command's TypeScript sources in the caller's folder, so the default Maildir is
    // ./data/maildir where `npm start` was typed (npm sets INIT_CWD to that folder).
    return run(
      node,
      ["--conditions=dev-source", join(repoRoot, "apps/postern/src/cli.ts"), "start", ...rest],
      env,
      process.env.INIT_CWD || process.cwd(),
    );
  }
  const services = await startTestServices(env, log);
  try {
    return await run(node, [pnpm, "exec", "node", "tooling/bootstrap/test.mjs", ...rest], { ...env, ...services.env });
  } finally {
    await services.stop();
  }
}

main().then(exitLike, (error) => {
  log(error instanceof BootstrapStop ? error.message : error instanceof Error ? error.message : String(error));
  process.exit(1);
});
