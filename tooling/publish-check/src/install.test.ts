// "Publish plugins to npm" works before anyone publishes: every public package is installed from
// its tarball with npm into a fresh project outside the workspace (dependencies from the npm
// registry, no workspace links, no dev-source condition), a postern.config.ts composes a server
// from the installed packages, typechecks against their published types, starts with plain Node
// and stores a message to Maildir. Then the installed create-postern-plugin scaffolds a plugin
// whose own tests, typecheck, build and publint pass.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { stripVTControlCharacters } from "node:util";
import { buildMessage, type FakeDns, sendMail, startFakeDns } from "@postern/testing";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { packedList, tarballOf } from "./packed.ts";
import { cleanEnv, notPlugins, type RunResult, run, runOk } from "./workspace.ts";

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const npmFlags = ["--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"];
/** What a user's project would add to typecheck a TypeScript config. */
const toolchain = ["typescript@~5.9.3", "@types/node@^24.10.0"];

let project: string;
let install: RunResult;

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), "postern-install-"));
  await writeFile(
    join(project, "package.json"),
    `${JSON.stringify({ name: "postern-install-check", private: true, type: "module" }, null, 2)}\n`,
  );
  const tarballs = packedList.filter((pkg) => pkg.tarball).map((pkg) => pkg.tarball!);
  install = await run(npm, ["install", ...npmFlags, ...tarballs, ...toolchain], {
    cwd: project,
    env: cleanEnv(),
    timeoutMs: 540_000,
  });
});

afterAll(async () => {
  if (project) await rm(project, { recursive: true, force: true });
});

describe("installed from tarballs with npm, outside the workspace", () => {
  it("installs every public package together", () => {
    expect(install.code, install.output).toBe(0);
    // A package that could not be packed is reported here too, with its build or pack error.
    for (const pkg of packedList) expect(() => tarballOf(pkg.name)).not.toThrow();
  });

  it("imports every package's published entry with plain Node; plugins default-export a factory", async () => {
    expect(install.code, install.output).toBe(0);
    const script = packedList
      .map(
        (pkg) => `m = await import(${JSON.stringify(pkg.name)}); out[${JSON.stringify(pkg.name)}] = typeof m.default;`,
      )
      .join("\n");
    await writeFile(
      join(project, "imports.mjs"),
      `const out = {}; let m;\n${script}\nconsole.log(JSON.stringify(out));\n`,
    );
    const output = await runOk(process.execPath, ["imports.mjs"], { cwd: project, env: cleanEnv() });
    const defaults = JSON.parse(output.trim().split("\n").at(-1)!) as Record<string, string>;
    for (const pkg of packedList) {
      const expected = notPlugins.has(pkg.name) ? "undefined" : "function";
      expect([pkg.name, defaults[pkg.name]]).toEqual([pkg.name, expected]);
    }
  });

  describe("a server composed in postern.config.ts", () => {
    let dns: FakeDns;
    beforeAll(async () => {
      dns = await startFakeDns({});
      await writeFile(
        join(project, "postern.config.ts"),
        `import { defineConfig } from "@postern/core";
import dnsbl from "@postern/dnsbl";
import recipients from "@postern/recipients";
import maildir from "@postern/store-maildir";

export default defineConfig({
  hostname: "mx.install.test",
  listeners: [{ address: "127.0.0.1", port: Number(process.env.PORT) }],
  dns: { servers: [process.env.DNS_SERVER ?? "127.0.0.1:53"], timeoutMs: 2000 },
  log: { level: "warn" },
  spoolDir: "./spool",
  plugins: [
    dnsbl({ zones: ["bl.install.test"] }),
    recipients({ domains: ["example.test"] }),
    maildir({ root: "./maildir" }),
  ],
});
`,
      );
      await writeFile(
        join(project, "serve.ts"),
        `import { createServer } from "@postern/core";
import config from "./postern.config.ts";

const server = createServer(config);
await server.start();
console.log(JSON.stringify({ listening: server.addresses() }));
process.once("SIGTERM", () => {
  server.stop().then(() => process.exit(0));
});
`,
      );
      // If the published types resolved to `any`, these expected errors would be unused: tsc fails.
      await writeFile(
        join(project, "types-are-real.ts"),
        `import { reject } from "@postern/core";
import dnsbl from "@postern/dnsbl";
import recipients from "@postern/recipients";

// @ts-expect-error zones is a list
dnsbl({ zones: "bl.example" });
// @ts-expect-error domains is required
recipients({});
// @ts-expect-error an enhanced status code is class.subject.detail
reject("550", "no");
`,
      );
      await writeFile(
        join(project, "tsconfig.json"),
        `${JSON.stringify(
          {
            compilerOptions: {
              module: "nodenext",
              target: "es2023",
              strict: true,
              noEmit: true,
              allowImportingTsExtensions: true,
              types: ["node"],
              // As most projects do: the config is checked against our published types, not every
              // dependency's declarations (attw checks that ours resolve).
              skipLibCheck: true,
            },
            include: ["postern.config.ts", "serve.ts", "types-are-real.ts"],
          },
          null,
          2,
        )}\n`,
      );
    });
    afterAll(async () => {
      await dns?.close();
    });

    it("typechecks against the published types", async () => {
      expect(install.code, install.output).toBe(0);
      await runOk(process.execPath, [join(project, "node_modules/typescript/bin/tsc"), "-p", "."], {
        cwd: project,
        env: cleanEnv(),
      });
    });

    it("starts with plain Node and stores a message sent with nodemailer to Maildir", async () => {
      expect(install.code, install.output).toBe(0);
      const port = await freePort();
      const child = spawn(process.execPath, ["serve.ts"], {
        cwd: project,
        env: cleanEnv({ PORT: String(port), DNS_SERVER: dns.servers[0]! }),
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      try {
        await listening(child.stdout, () => stderr);
        child.stdout.resume(); // keep draining the server's log lines
        const raw = buildMessage({ subject: "install check", to: "user@example.test" });
        const sent = await sendMail({ port, to: "user@example.test", raw, startTls: false });
        expect(sent.response).toMatch(/^250 2\.0\.0 Ok: queued as /);

        const mailbox = join(project, "maildir/example.test/user/new");
        const files = await readdir(mailbox);
        expect(files).toHaveLength(1);
        const stored = await readFile(join(mailbox, files[0]!), "utf8");
        expect(stored).toContain("by mx.install.test (Postern) with ESMTP id ");
        expect(stored).toContain("X-Postern-DNSBL: mx.install.test; dnsbl=clean ip=127.0.0.1");
        expect(stored.endsWith(raw.toString())).toBe(true);
      } finally {
        child.kill("SIGTERM");
        if (child.exitCode === null) await once(child, "exit");
      }
    });
  });

  describe("create-postern-plugin, as `npm create postern-plugin` runs it", () => {
    let scaffold: string;
    let plugin: string;
    beforeAll(async () => {
      scaffold = await mkdtemp(join(tmpdir(), "postern-scaffold-"));
      plugin = join(scaffold, "postern-greylist");
    });
    afterAll(async () => {
      if (scaffold) await rm(scaffold, { recursive: true, force: true });
    });

    it("writes a plugin package whose own tests, typecheck, build and publint pass", async () => {
      expect(install.code, install.output).toBe(0);
      const bin = join(project, "node_modules/.bin/create-postern-plugin");
      const created = await runOk(bin, ["postern-greylist", "--name", "@acme/postern-greylist"], {
        cwd: scaffold,
        env: cleanEnv(),
      });
      expect(created).toContain("Created @acme/postern-greylist");

      // @postern/core and @postern/testing are not on npm yet: point the generated package at
      // their tarballs. Once published, `npm install` takes the ranges the scaffolder wrote.
      const manifestPath = join(plugin, "package.json");
      const manifest = JSON.parse(await readFile(manifestPath, "utf8")) as {
        devDependencies: Record<string, string>;
        peerDependencies: Record<string, string>;
      };
      expect(manifest.peerDependencies["@postern/core"]).toMatch(/^\^\d+\.\d+\.\d+$/);
      manifest.devDependencies["@postern/core"] = `file:${tarballOf("@postern/core")}`;
      manifest.devDependencies["@postern/testing"] = `file:${tarballOf("@postern/testing")}`;
      await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);

      await runOk(npm, ["install", ...npmFlags], { cwd: plugin, env: cleanEnv(), timeoutMs: 540_000 });
      const tested = await runOk(npm, ["test"], { cwd: plugin, env: cleanEnv() });
      expect(stripVTControlCharacters(tested)).toMatch(/Tests\s+3 passed \(3\)/);
      await runOk(npm, ["run", "typecheck"], { cwd: plugin, env: cleanEnv() });

      // `npm pack` runs the prepack build; publint then sees exactly what `npm publish` would send.
      await mkdir(join(scaffold, "packed"));
      await runOk(npm, ["pack", "--pack-destination", join(scaffold, "packed")], { cwd: plugin, env: cleanEnv() });
      const [tarballName] = await readdir(join(scaffold, "packed"));
      const bytes = await readFile(join(scaffold, "packed", tarballName!));
      const { messages, pkg } = await publint({
        strict: true,
        pack: { tarball: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer },
      });
      expect(messages.map((message) => formatMessage(message, pkg, { color: false }))).toEqual([]);
    });
  });
});

/** A port nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

/** Resolves once serve.ts printed its listening line; rejects with stderr if it exits first. */
async function listening(stdout: NodeJS.ReadableStream, stderr: () => string): Promise<void> {
  const lines = createInterface({ input: stdout });
  for await (const line of lines) {
    if (line.startsWith('{"listening"')) return;
  }
  throw new Error(`serve.ts exited before listening:\n${stderr()}`);
}
