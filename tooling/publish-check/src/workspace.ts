// The packages this check covers, found on disk rather than listed: every folder under packages/
// with a src/index.ts whose package.json is not private. A package another helper is still writing
// is covered as soon as it has its public face.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot: string = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export interface Manifest {
  name: string;
  version: string;
  private?: boolean;
  type?: string;
  description?: string;
  license?: string;
  keywords?: string[];
  engines?: Record<string, string>;
  repository?: { type?: string; url?: string; directory?: string } | string;
  files?: string[];
  exports?: unknown;
  bin?: Record<string, string> | string;
  sideEffects?: boolean;
  publishConfig?: Record<string, unknown>;
  dependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

export interface WorkspacePackage {
  readonly dir: string;
  /** "packages/<folder>", as written in repository.directory. */
  readonly relativeDir: string;
  readonly manifest: Manifest;
}

export function readManifest(dir: string): Manifest {
  return JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;
}

export function publicPackages(): WorkspacePackage[] {
  const packagesDir = join(repoRoot, "packages");
  return readdirSync(packagesDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(packagesDir, entry.name))
    .filter((dir) => existsSync(join(dir, "src/index.ts")) && existsSync(join(dir, "package.json")))
    .map((dir) => ({ dir, relativeDir: `packages/${dir.slice(packagesDir.length + 1)}`, manifest: readManifest(dir) }))
    .filter((pkg) => !pkg.manifest.private)
    .sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
}

/** The applications under apps/ that are published (not private): the `postern` command. */
export function publicApps(): WorkspacePackage[] {
  const appsDir = join(repoRoot, "apps");
  if (!existsSync(appsDir)) return [];
  return readdirSync(appsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(appsDir, entry.name, "package.json")))
    .map((entry) => join(appsDir, entry.name))
    .map((dir) => ({ dir, relativeDir: `apps/${dir.slice(appsDir.length + 1)}`, manifest: readManifest(dir) }))
    .filter((pkg) => !pkg.manifest.private)
    .sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
}

/** Packages that are not plugins and so need no "postern-plugin" keyword. */
export const notPlugins: ReadonlySet<string> = new Set([
  "@postern/core",
  "@postern/testing",
  "create-postern-plugin",
  "create-postern",
]);

/** The scaffolders: they write packages that depend on @postern/core, and need no core themselves. */
export const scaffolders: ReadonlySet<string> = new Set(["create-postern-plugin", "create-postern"]);

/** npm settings the machine's operator chose (registry mirror, cache, CA), kept for npm. */
const operatorNpmSettings = new Set([
  "npm_config_registry",
  "npm_config_cache",
  "npm_config_userconfig",
  "npm_config_cafile",
]);

/**
 * The environment for npm in a project outside the workspace: without the npm_* variables pnpm
 * and turbo set for their own scripts (they would configure npm as if it ran inside the workspace).
 * Proxy and CA variables (HTTPS_PROXY, NODE_EXTRA_CA_CERTS …) stay: turbo.json passes them through,
 * and without them npm cannot reach the registry on machines that need them.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    const pnpmOwn = /^npm_/i.test(key) && !operatorNpmSettings.has(key.toLowerCase());
    if (!pnpmOwn && key !== "INIT_CWD" && key !== "PNPM_SCRIPT_SRC_DIR") env[key] = value;
  }
  return { ...env, npm_config_update_notifier: "false", npm_config_fund: "false", npm_config_audit: "false", ...extra };
}

/** pnpm as the current process was started with it (turbo runs scripts through pnpm), or from PATH. */
export function pnpmCommand(): [string, string[]] {
  const execpath = process.env.npm_execpath;
  if (execpath && /pnpm/.test(execpath)) return [process.execPath, [execpath]];
  return ["pnpm", []];
}

export interface RunResult {
  code: number | null;
  output: string;
}

/** Runs a command, collecting stdout and stderr together; never throws for a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: "pipe" });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const timer = setTimeout(() => child.kill("SIGTERM"), options.timeoutMs ?? 300_000);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output });
    });
  });
}

/** Like run(), but throws with the command's output when it fails. */
export async function runOk(
  command: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    throw new Error(`${[command, ...args].join(" ")} (in ${options.cwd}) exited ${result.code}:\n${result.output}`);
  }
  return result.output;
}
