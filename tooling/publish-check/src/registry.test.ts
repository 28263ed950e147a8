// Installing Postern from npm as a new user would, before anyone publishes: every package and the
// `postern` command are published to a private registry on loopback (Verdaccio, no uplink), and in
// empty folders outside the workspace plain npm with the pinned Node installs `postern` with two
// plugins, a TS and a YAML config are checked and started and deliver a message, and
// `npm create postern` and `npm create postern-plugin` run from that registry — the site they make
// installing and passing its own test.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { buildMessage, type FakeDns, sendMail, startFakeDns } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { everyTarball } from "./packed.ts";
import { seedDependencies } from "./registry/seed.ts";
import { type Registry, startVerdaccio } from "./registry/verdaccio.ts";
import { cleanEnv, type RunResult, readManifest, repoRoot, run } from "./workspace.ts";

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const npx = process.platform === "win32" ? "npx.cmd" : "npx";

let work: string;
let registry: Registry;
let dns: FakeDns;
/** npm's environment in the user's folders: this registry only, a cache of their own, the pinned Node first. */
let userEnv: NodeJS.ProcessEnv;
const published: Record<string, RunResult> = {};

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

function inUserFolder(command: string, args: string[], cwd: string, extra: NodeJS.ProcessEnv = {}) {
  return run(command, args, { cwd, env: { ...userEnv, ...extra }, timeoutMs: 300_000 });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "postern-registry-"));
  await mkdir(join(work, "verdaccio"));
  registry = await startVerdaccio(join(work, "verdaccio"));
  const ours = everyTarball();
  // What a site's `npm install` needs beyond our packages: the generated site's toolchain.
  const root = readManifest(repoRoot);
  await seedDependencies(
    registry,
    ours,
    { typescript: root.devDependencies!.typescript!, "@types/node": root.devDependencies!["@types/node"]! },
    join(work, "seed"),
  );
  userEnv = cleanEnv({
    npm_config_userconfig: registry.npmrc,
    npm_config_registry: registry.url,
    npm_config_cache: join(work, "npm-cache"),
    PATH: [dirname(process.execPath), process.env.PATH ?? ""].join(delimiter),
  });
  // Our packages the way a release does it: `npm publish` of the packed tarball.
  for (const { name, tarball } of ours) {
    published[name] = await inUserFolder(npm, ["publish", tarball, "--access", "public"], work);
  }
  dns = await startFakeDns({
    "example.test": { TXT: ["v=spf1 ip4:127.0.0.1 -all"] },
  });
});

afterAll(async () => {
  await dns?.close();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("published to a private registry", () => {
  it("takes every package and the postern command with npm publish", async () => {
    for (const { name } of everyTarball()) {
      expect([name, published[name]?.code], published[name]?.output).toEqual([name, 0]);
      const response = await fetch(new URL(name.replace("/", "%2f"), registry.url));
      expect([name, response.status]).toEqual([name, 200]);
    }
  });
});

interface RunningServer {
  readonly child: ChildProcess;
  stderr(): string;
}

/**
 * Runs the installed bin (node_modules/.bin/postern, as systemd or a shell would) until it listens.
 * Not through npx: npm exec runs it under a shell that does not pass SIGTERM on.
 */
async function startPostern(cwd: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunningServer> {
  const bin = join(cwd, "node_modules/.bin/postern");
  const child = spawn(bin, ["start", ...args], { cwd, env: { ...userEnv, ...env }, stdio: "pipe" });
  let stderr = "";
  child.stdout!.resume();
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  while (!/listening on /.test(stderr)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`postern start exited:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, stderr: () => stderr };
}

/** SIGTERM to postern; resolves with what it said last. */
async function stopped(server: RunningServer): Promise<string> {
  const closed = once(server.child, "close");
  server.child.kill("SIGTERM");
  await closed;
  return server.stderr().trimEnd().split("\n").at(-1) ?? "";
}

describe("plain npm in an empty folder: postern with two plugins", () => {
  let site: string;
  let install: RunResult;
  beforeAll(async () => {
    site = join(work, "site");
    await mkdir(site);
    // What a newcomer types first; it writes "type": "commonjs", which the config must survive.
    await inUserFolder(npm, ["init", "-y"], site);
    install = await inUserFolder(npm, ["install", "postern", "@postern/dnsbl", "@postern/spf"], site);
  });

  const tsConfig = `import { defineConfig } from "@postern/core";
import dnsbl from "@postern/dnsbl";
import recipients from "@postern/recipients";
import spf from "@postern/spf";
import maildir from "@postern/store-maildir";

export default defineConfig({
  hostname: "mx.registry.test",
  listeners: [{ address: "127.0.0.1", port: Number(process.env.PORT ?? 2525) }],
  dns: { servers: [process.env.DNS_SERVER ?? "127.0.0.1:53"], timeoutMs: 2000 },
  log: { level: "warn" },
  spoolDir: "./spool",
  plugins: [
    dnsbl({ zones: ["bl.registry.test"] }),
    spf(),
    recipients({ domains: ["example.test"] }),
    maildir({ root: "./ts-mail" }),
  ],
});
`;
  const yamlConfig = (port: number) => `hostname: mx.registry.test
listeners:
  - address: 127.0.0.1
    port: ${port}
dns:
  servers: ["${dns.servers[0]}"]
  timeoutMs: 2000
log: { level: warn }
spoolDir: ./spool
plugins:
  - package: "@postern/dnsbl"
    options: { zones: [bl.registry.test] }
  - "@postern/spf"
  - package: "@postern/recipients"
    options: { domains: [example.test] }
  - package: "@postern/store-maildir"
    options: { root: ./yaml-mail }
`;

  async function deliverAndRead(port: number, maildir: string): Promise<string> {
    const raw = buildMessage({ from: "alice@example.test", to: "bob@example.test", subject: "from the registry" });
    const sent = await sendMail({ port, from: "alice@example.test", to: "bob@example.test", raw });
    expect(sent.response).toMatch(/^250 /);
    const folder = join(site, maildir, "example.test/bob/new");
    const [file] = await readdir(folder);
    return readFile(join(folder, file!), "utf8");
  }

  it("installs with nothing but the registry", () => {
    expect(install.code, install.output).toBe(0);
  });

  it("checks and starts a postern.config.ts, which delivers a message", async () => {
    expect(install.code, install.output).toBe(0);
    await writeFile(join(site, "postern.config.ts"), tsConfig);
    const env = { DNS_SERVER: dns.servers[0]! };
    const checked = await inUserFolder(npx, ["postern", "check"], site, env);
    expect(checked.code, checked.output).toBe(0);
    expect(checked.output).toContain("postern.config.ts: valid");

    const port = await freePort();
    const server = await startPostern(site, [], { ...env, PORT: String(port) });
    try {
      const stored = await deliverAndRead(port, "ts-mail");
      expect(stored).toContain("X-Postern-DNSBL: mx.registry.test; dnsbl=clean ip=127.0.0.1");
      expect(stored).toMatch(/spf=pass/);
    } finally {
      expect(await stopped(server)).toBe("postern: stopped");
    }
  });

  it("checks and starts the same in postern.yaml, which delivers a message", async () => {
    expect(install.code, install.output).toBe(0);
    const port = await freePort();
    await writeFile(join(site, "postern.yaml"), yamlConfig(port));
    const checked = await inUserFolder(npx, ["postern", "check", "-c", "postern.yaml"], site);
    expect(checked.code, checked.output).toBe(0);
    expect(checked.output).toContain("postern.yaml: valid");

    const server = await startPostern(site, ["-c", "postern.yaml"], {});
    try {
      const stored = await deliverAndRead(port, "yaml-mail");
      expect(stored).toMatch(/spf=pass/);
    } finally {
      expect(await stopped(server)).toBe("postern: stopped");
    }
  });

  it("names the npm install to run for a command whose plugin is not installed", async () => {
    expect(install.code, install.output).toBe(0);
    const result = await inUserFolder(npx, ["postern", "user", "list", "-f", "users"], site);
    expect(result.code).toBe(1);
    expect(result.output.trim()).toBe(
      "postern user needs @postern/auth; install it next to your config: npm install @postern/auth",
    );
  });
});

describe("npm create, from the registry", () => {
  it("npm create postern makes a site that installs and passes its own test", async () => {
    const parent = join(work, "create-site");
    await mkdir(parent);
    const created = await inUserFolder(
      npm,
      ["create", "postern@latest", "my-mx", "--", "--domain", "example.test"],
      parent,
    );
    expect(created.code, created.output).toBe(0);
    expect(created.output).toContain("Created my-mx in my-mx: mail for example.test, served as mx.example.test");
    const site = join(parent, "my-mx");
    const install = await inUserFolder(npm, ["install"], site);
    expect(install.code, install.output).toBe(0);
    const tested = await inUserFolder(npm, ["test"], site);
    expect(tested.code, tested.output).toBe(0);
    expect(tested.output).toContain("postern.config.ts: valid");
    expect(tested.output).toMatch(/pass 1/);
  });

  it("npm create postern-plugin makes a plugin package", async () => {
    const parent = join(work, "create-plugin");
    await mkdir(parent);
    const created = await inUserFolder(npm, ["create", "postern-plugin@latest", "postern-greylist"], parent);
    expect(created.code, created.output).toBe(0);
    expect(created.output).toContain("Created postern-greylist in postern-greylist:");
    const manifest = JSON.parse(await readFile(join(parent, "postern-greylist/package.json"), "utf8"));
    expect(manifest.peerDependencies["@postern/core"]).toMatch(/^\^\d+\.\d+\.\d+$/);
  });
});
