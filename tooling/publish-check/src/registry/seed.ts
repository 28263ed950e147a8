// What the private registry must hold besides our packages: every third-party package they (and
// the generated site's toolchain) depend on, because the registry has no uplink. The dependency
// tree is resolved once with npm against the machine's usual registry (a lockfile only), the
// tarballs fetched with `npm pack`, and each put into Verdaccio the way `npm publish` does —
// a PUT of the manifest with the tarball attached — rather than with `npm publish`, which would
// honour a third-party package's own publishConfig.registry.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { cleanEnv, runOk } from "../workspace.ts";
import type { Registry } from "./verdaccio.ts";

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const execFileAsync = promisify(execFile);

interface LockEntry {
  name?: string;
  version?: string;
  resolved?: string;
  link?: boolean;
  optional?: boolean;
  os?: string[];
  cpu?: string[];
}

/** Whether an optional package (a native binary for some platform) would install on this machine. */
function fitsThisMachine(entry: LockEntry): boolean {
  const allows = (list: string[] | undefined, value: string) =>
    !list || list.some((item) => item === value || (item.startsWith("!") ? item.slice(1) !== value : false));
  return allows(entry.os, process.platform) && allows(entry.cpu, process.arch);
}

/** name@version of every third-party package the lockfile of `dependencies` installs here. */
async function resolveTree(work: string, dependencies: Record<string, string>, ours: ReadonlySet<string>) {
  await mkdir(work, { recursive: true });
  await writeFile(join(work, "package.json"), JSON.stringify({ name: "seed", private: true, dependencies }));
  await runOk(npm, ["install", "--package-lock-only", "--ignore-scripts", "--no-audit", "--no-fund"], {
    cwd: work,
    env: cleanEnv(),
    timeoutMs: 300_000,
  });
  const lock = JSON.parse(await readFile(join(work, "package-lock.json"), "utf8")) as {
    packages: Record<string, LockEntry>;
  };
  const specs = new Set<string>();
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === "" || entry.link || !entry.version || entry.resolved?.startsWith("file:")) continue;
    const name = entry.name ?? path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length);
    if (ours.has(name) || (entry.optional && !fitsThisMachine(entry))) continue;
    specs.add(`${name}@${entry.version}`);
  }
  return [...specs].sort();
}

/** The package.json at the top of a tarball (its folder is "package/" for most, not all). */
async function manifestOf(tarball: string, cwd: string): Promise<Record<string, unknown>> {
  const text = await runOk("tar", ["-xzOf", tarball, "--wildcards", "--no-wildcards-match-slash", "*/package.json"], {
    cwd,
  });
  return JSON.parse(text) as Record<string, unknown>;
}

/** Publishes one tarball into the registry as `npm publish` would (a 409 means it is there already). */
export async function putTarball(registry: Registry, tarball: string, cwd: string): Promise<void> {
  const manifest = await manifestOf(tarball, cwd);
  const name = manifest.name as string;
  const version = manifest.version as string;
  const bytes = await readFile(tarball);
  const file = `${name.replace(/^@[^/]+\//, "")}-${version}.tgz`;
  const dist = {
    shasum: createHash("sha1").update(bytes).digest("hex"),
    integrity: `sha512-${createHash("sha512").update(bytes).digest("base64")}`,
    tarball: new URL(`${name}/-/${file}`, registry.url).href,
  };
  const body = {
    _id: name,
    name,
    "dist-tags": { latest: version },
    versions: { [version]: { ...manifest, _id: `${name}@${version}`, dist } },
    _attachments: {
      [file]: { content_type: "application/octet-stream", data: bytes.toString("base64"), length: bytes.length },
    },
  };
  const response = await fetch(new URL(name.replace("/", "%2f"), registry.url), {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${registry.token}` },
    body: JSON.stringify(body),
  });
  if (!response.ok && response.status !== 409) {
    throw new Error(`the registry refused ${name}@${version}: HTTP ${response.status} ${await response.text()}`);
  }
}

/** Runs `work` over `items`, `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const workers = Array.from({ length: Math.min(limit, queue.length) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await work(item);
  });
  await Promise.all(workers);
}

/**
 * Puts every third-party package that `ours` (our tarballs) and `extras` (e.g. "typescript":
 * "~5.9.3") need into the registry; returns their name@version.
 */
export async function seedDependencies(
  registry: Registry,
  ours: readonly { name: string; tarball: string }[],
  extras: Record<string, string>,
  work: string,
): Promise<string[]> {
  const dependencies = Object.fromEntries([
    ...ours.map(({ name, tarball }) => [name, `file:${tarball}`]),
    ...Object.entries(extras),
  ]);
  const specs = await resolveTree(join(work, "tree"), dependencies, new Set(ours.map(({ name }) => name)));
  const packs = join(work, "tarballs");
  await mkdir(packs, { recursive: true });
  // One npm for all of them: it fetches through the machine's registry settings (proxy, CA).
  const { stdout } = await execFileAsync(
    npm,
    ["pack", "--json", "--ignore-scripts", "--loglevel=error", "--pack-destination", packs, ...specs],
    { cwd: work, env: cleanEnv(), timeout: 300_000, maxBuffer: 64 * 1024 * 1024 },
  );
  // Versions of one package go in one after another: Verdaccio rewrites a package's one manifest
  // for each publish, and two versions put at once (nodemailer 10.6.0 for a dependency, 10.6.1 for
  // us) could race there — CI once got HTTP 500 "unknown error" for one of them.
  const byName = new Map<string, string[]>();
  for (const entry of JSON.parse(stdout) as { name: string; filename: string }[]) {
    const file = join(packs, entry.filename.replace(/^@/, "").replace("/", "-"));
    byName.set(entry.name, [...(byName.get(entry.name) ?? []), file]);
  }
  await eachLimited([...byName.values()], 8, async (files) => {
    for (const file of files) await putTarball(registry, file, work);
  });
  return specs;
}
