// How `postern` treats a site's own files, through the real CLI in folders outside the repository:
// a TS config in a package that says "type": "commonjs" (what `npm init -y` writes), a local plugin
// module in a bare folder importing @postern/core (it gets the server's own copy), relative paths
// in a config read from elsewhere, and the one-line errors for what a new user gets wrong.
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildMessage, sendMail } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  freePort,
  killRunningClis,
  makeTempDir,
  removeTempDirs,
  runCli,
  startCli,
} from "./test-support/cli-process.ts";

const appDir = fileURLToPath(new URL("..", import.meta.url));

afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

async function site(files: Record<string, string>): Promise<string> {
  const dir = await makeTempDir("site");
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

function lines(stderr: string): string[] {
  return stderr.trimEnd().split("\n");
}

describe("a site's files", () => {
  it('loads postern.config.ts in a package whose package.json says "type": "commonjs"', async () => {
    const dir = await site({
      "package.json": JSON.stringify({ name: "my-mx", version: "1.0.0", type: "commonjs" }),
      "postern.config.ts": `import { defineConfig, type Plugin } from "@postern/core";
import recipients from "@postern/recipients";
import maildir from "@postern/store-maildir";
const tag: Plugin = { name: "tag", hooks: {} };
export default defineConfig({
  hostname: "mx.example.org",
  listeners: [{ address: "127.0.0.1", port: 2599 }],
  plugins: [recipients({ domains: ["example.org"] }), maildir({ root: "./mail" }), tag],
});
`,
    });
    const result = await runCli(["check"], dir);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("postern.config.ts: valid");
  });

  it("gives a local plugin module in a folder without node_modules the server's @postern/core", async () => {
    const port = await freePort();
    // The plugin's verdict must be core's own: a verdict made by a second copy of core would not
    // be recognised, and its result key would not match.
    const dir = await site({
      "plugins/no-lottery.mjs": `import { reject } from "@postern/core";
export default () => ({
  name: "no-lottery",
  hooks: {
    data(transaction, message) {
      if (/lottery/i.test(message.headers.get("subject") ?? "")) return reject("5.7.1", "No lotteries here");
    },
  },
});
`,
      "postern.yaml": `listeners:
  - port: ${port}
plugins:
  - package: ./plugins/no-lottery.mjs
  - package: "@postern/recipients"
    options: { domains: [example.org] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`,
    });
    const cli = startCli(["start"], dir);
    await cli.waitForStderr(/listening on /);
    await expect(
      sendMail({
        port,
        to: "ann@example.org",
        raw: buildMessage({ to: "ann@example.org", subject: "You won the lottery" }),
      }),
    ).rejects.toMatchObject({ responseCode: 550, response: expect.stringContaining("5.7.1 No lotteries here") });
    const ok = await sendMail({
      port,
      to: "ann@example.org",
      raw: buildMessage({ to: "ann@example.org", subject: "Lunch" }),
    });
    expect(ok.response).toMatch(/^250 /);
    process.kill(cli.pid, "SIGTERM");
    expect((await cli.exited()).code).toBe(0);
  });

  it("reads relative paths from the config's folder, not the working directory", async () => {
    const port = await freePort();
    const dir = await site({
      "etc/postern.yaml": `listeners:
  - port: ${port}
spoolDir: ./spool
plugins:
  - package: "@postern/recipients"
    options: { domains: [example.org] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`,
    });
    const elsewhere = await makeTempDir("elsewhere");
    const cli = startCli(["start", "-c", join(dir, "etc/postern.yaml")], elsewhere);
    await cli.waitForStderr(/listening on /);
    await sendMail({ port, to: "bob@example.org", raw: buildMessage({ to: "bob@example.org" }) });
    expect(await readdir(join(dir, "etc/mail/example.org/bob/new"))).toHaveLength(1);
    expect(await readdir(elsewhere)).toEqual([]);
    process.kill(cli.pid, "SIGTERM");
    expect((await cli.exited()).code).toBe(0);
  });
});

describe("one-line errors for a new user's mistakes", () => {
  const cases: { name: string; files: Record<string, string>; expected: string[] }[] = [
    {
      name: "a misspelt required plugin option names the typo",
      files: {
        "postern.yaml":
          'plugins:\n  - package: "@postern/recipients"\n    options:\n      domain: [example.org]\n  - package: "@postern/store-maildir"\n    options: { root: ./mail }\n',
      },
      expected: [
        'postern.yaml: plugins.0.options.domains: expected a list of local domains, e.g. ["example.com"] (got nothing); "domain" is set: did you mean "domains"? (line 4)',
      ],
    },
    {
      name: "a size that is not a size says which form it takes",
      files: { "postern.yaml": "limits:\n  maxMessageSize: lots\n" },
      expected: [
        'postern.yaml: limits.maxMessageSize: expected a size such as 26214400, "25MB" or "512KB" (got "lots") (line 2)',
      ],
    },
    {
      name: "a plugin listed without its options says which it needs",
      files: { "postern.yaml": 'plugins:\n  - "@postern/recipients"\n' },
      expected: [
        'postern.yaml: plugins.0: @postern/recipients needs options; add "options:" under this entry, e.g. domains (expected a list of local domains, e.g. ["example.com"]) (line 2)',
      ],
    },
    {
      name: "several problems in one file, all at once",
      files: {
        "postern.yaml":
          'listeners:\n  - port: 99999\nlimits:\n  maxRecipients: many\nplugins:\n  - package: "@postern/no-such-plugin"\n  - package: "@postern/store-maildir"\n    options: { rooot: ./mail }\n',
      },
      expected: [
        'postern.yaml: plugins.0.package: cannot find package "@postern/no-such-plugin"; install it next to postern.yaml (npm install @postern/no-such-plugin) or check the name (line 6)',
        'postern.yaml: plugins.1.options.root: expected the Maildir root directory, e.g. "./data/maildir" (got nothing); "rooot" is set: did you mean "root"? (line 8)',
        "postern.yaml: listeners.0.port: expected a port number 1–65535 (got 99999) (line 2)",
        'postern.yaml: limits.maxRecipients: Invalid input: expected number, received string (got "many") (line 4)',
      ],
    },
    {
      name: "a TS config importing a plugin package that is not installed says what to install",
      files: {
        "postern.config.ts": 'import spam from "@postern/spam-scorer";\nexport default { plugins: [spam()] };\n',
      },
      expected: [
        'postern.config.ts: cannot find package "@postern/spam-scorer"; install it next to postern.config.ts (npm install @postern/spam-scorer)',
      ],
    },
  ];
  for (const { name, files, expected } of cases) {
    it(name, async () => {
      const dir = await site(files);
      const result = await runCli(["check"], dir);
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toEqual(expected);
      expect(result.stdout).toBe("");
    });
  }

  it("a Node older than the one postern needs is one line, before anything is loaded", async () => {
    // The real bin, next to a package.json asking for a Node that does not exist yet: what a
    // Node 20 sees today. Had anything been imported first, the missing #cli would be a stack.
    const dir = await site({
      "package.json": JSON.stringify({ name: "postern", type: "module", engines: { node: ">=99.1.0" } }),
    });
    await mkdir(join(dir, "bin"));
    await writeFile(join(dir, "bin/postern.js"), await readFile(join(appDir, "bin/postern.js")));
    const result = await runCli(["--version"], dir, join(dir, "bin/postern.js"));
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      `postern needs Node.js 99.1.0 or later (this is Node.js ${process.versions.node}); install a newer Node, e.g. from https://nodejs.org`,
    ]);
  });

  it("`postern dkim keygen` for a key that exists is one line, exit 1", async () => {
    const dir = await makeTempDir("dkim");
    const args = [
      "dkim",
      "keygen",
      "--domain",
      "example.org",
      "--selector",
      "s1",
      "--algorithm",
      "ed25519",
      "--out",
      dir,
    ];
    expect((await runCli(args, dir)).code).toBe(0);
    const again = await runCli(args, dir);
    expect(again.code).toBe(1);
    expect(lines(again.stderr)).toEqual([
      `${join(dir, "example.org.s1.key")} already exists; choose another --selector or --out (keys are never overwritten)`,
    ]);
  });

  it("`postern queue` with a config that has no outbound plugin is one line, exit 1 (not a usage error)", async () => {
    const dir = await site({ "postern.yaml": "listeners:\n  - port: 2525\n" });
    const result = await runCli(["queue", "list"], dir);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      "postern.yaml has no @postern/outbound plugin, so there is no delivery queue",
    ]);
  });
});
