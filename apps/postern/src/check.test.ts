// `postern check` and the command line itself, through the real CLI in a child process.
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { killRunningClis, makeTempDir, removeTempDirs, runCli } from "./test-support/cli-process.ts";

const packagesDir = resolve(dirname(fileURLToPath(import.meta.url)), "../../../packages");

afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

/** A directory holding one config file; `nodeModules` links @postern packages in, as npm would. */
async function configDir(files: Record<string, string>, nodeModules: string[] = []): Promise<string> {
  const dir = await makeTempDir("check");
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  if (nodeModules.length > 0) await mkdir(join(dir, "node_modules/@postern"), { recursive: true });
  for (const name of nodeModules)
    await symlink(join(packagesDir, name), join(dir, "node_modules/@postern", name), "dir");
  return dir;
}

function stderrLines(stderr: string): string[] {
  return stderr.trimEnd().split("\n");
}

const validYaml = `hostname: mx.example.org
listeners:
  - port: 2526
  - address: 127.0.0.1
    port: 2587
    auth: optional
    allowInsecureAuth: true
plugins:
  - package: "@postern/recipients"
    options:
      domains: [example.org]
  - package: "@postern/store-maildir"
    options:
      root: ./mail
`;

describe("postern check", () => {
  it("validates a YAML config and prints its listeners and the plugin order per hook", async () => {
    const dir = await configDir({ "postern.yaml": validYaml });
    const result = await runCli(["check"], dir);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("postern.yaml: valid");
    expect(result.stdout).toMatch(/127\.0\.0\.1:2526 +tls none +auth none/);
    expect(result.stdout).toMatch(/127\.0\.0\.1:2587 +tls none +auth optional/);
    expect(result.stdout).toMatch(/^ {2}smtp\.rcptTo +first +@postern\/recipients \(30s\)$/m);
    expect(result.stdout).toMatch(/^ {2}smtp\.queue +first +@postern\/store-maildir \(30s\)$/m);
    expect(result.stdout).toMatch(/^ {2}smtp\.connect +first +\(none\)$/m);
    expect(result.stdout).toMatch(/^ {2}smtp\.close +all +\(none\)$/m);
  });

  it("validates a postern.config.ts that default-exports defineConfig, honouring hook order", async () => {
    const dir = await configDir(
      {
        "postern.config.ts": `import { defineConfig, reject, type Plugin } from "@postern/core";
import recipients from "@postern/recipients";

// Listed second, but its rcptTo hook asks to run first.
const blockList: Plugin = {
  name: "block-list",
  hooks: {
    rcptTo: {
      order: "pre",
      handler: (_transaction, recipient) =>
        recipient.address === "blocked@example.org" ? reject("5.7.1", "Blocked") : undefined,
    },
  },
};

export default defineConfig({
  hostname: "mx.example.org",
  listeners: [{ address: "127.0.0.1", port: 2527 }],
  plugins: [recipients({ domains: ["example.org"] }), blockList],
});
`,
      },
      ["core", "recipients"],
    );
    const result = await runCli(["check"], dir);
    // It stores nothing: valid, with that said as a warning.
    expect(stderrLines(result.stderr)).toEqual([
      "postern.config.ts: warning: plugins: no plugin stores mail (queue), so every message is deferred with 451 4.3.0; add @postern/store-maildir or another store",
      "postern check: 0 errors, 1 warning",
    ]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("postern.config.ts: valid");
    expect(result.stdout).toMatch(/127\.0\.0\.1:2527 +tls none +auth none/);
    expect(result.stdout).toMatch(/^ {2}smtp\.rcptTo +first +block-list \(pre, 30s\), @postern\/recipients \(30s\)$/m);
  });

  it("lists outbound's delivery hooks with the SMTP hooks, each handler with its order and deadline", async () => {
    const dir = await configDir({
      "postern.yaml": `${validYaml}  - package: "@postern/outbound"
    options: { queue: { type: fs, dir: ./queue }, worker: { enabled: false } }
`,
    });
    const result = await runCli(["check"], dir);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(
      /^ {2}smtp\.queue +first +@postern\/store-maildir \(30s\), @postern\/outbound \(30s\)$/m,
    );
    expect(result.stdout).toMatch(/^ {2}outbound\.route +first +\(none\)$/m);
    expect(result.stdout).toMatch(/^ {2}outbound\.bounced +all +\(none\)$/m);
  });

  it("loads a plugin package installed next to the config before looking in the app", async () => {
    const dir = await configDir({
      "postern.yaml": "plugins:\n  - package: acme-greylist\n    options: { minutes: 5 }\n",
      "node_modules/acme-greylist/package.json": JSON.stringify({
        name: "acme-greylist",
        type: "module",
        exports: { ".": { import: "./index.js" } },
      }),
      "node_modules/acme-greylist/index.js":
        'export default (options) => ({ name: "acme-greylist " + options.minutes + "m", hooks: { rcptTo() {} } });\n',
    });
    const result = await runCli(["check", "-c", "postern.yaml"], dir);
    expect(result.stderr).toContain("warning: plugins: no plugin stores mail");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ {2}smtp\.rcptTo +first +acme-greylist 5m \(30s\)$/m);
  });

  describe("a broken config ends as one stderr line naming the file and the key, exit 1", () => {
    const cases: { name: string; files: Record<string, string>; modules?: string[]; line: RegExp }[] = [
      {
        name: "YAML syntax error",
        files: { "postern.yaml": "hostname: mx.example.org\nlisteners:\n  - port: 2525\n   address: [\n" },
        line: /^postern\.yaml: line \d+, column \d+: YAML syntax error: .+$/,
      },
      {
        name: "unknown plugin package",
        files: { "postern.yaml": 'plugins:\n  - package: "@postern/no-such-plugin"\n' },
        line: /^postern\.yaml: plugins\.0\.package: cannot find package "@postern\/no-such-plugin".*\(line 2\)$/,
      },
      {
        name: "wrong type for a key",
        files: { "postern.yaml": "listeners:\n  - port: twenty-five\n" },
        line: /^postern\.yaml: listeners\.0\.port: expected a port number 1–65535 \(got "twenty-five"\) \(line 2\)$/,
      },
      {
        name: "bad plugin option",
        files: {
          "postern.yaml": 'plugins:\n  - package: "@postern/recipients"\n    options:\n      domains: example.org\n',
        },
        line: /^postern\.yaml: plugins\.0\.options\.domains: expected a list of local domains.* \(got "example\.org"\) \(line 4\)$/,
      },
      {
        name: "misspelt setting",
        files: { "postern.yaml": "hostname: mx.example.org\nlimits:\n  maxMessageSise: 10MB\n" },
        line: /^postern\.yaml: limits\.maxMessageSise: unknown setting; expected one of maxMessageSize, .+ \(line 3\)$/,
      },
      {
        name: "schema error in a TS config",
        files: {
          "postern.config.ts":
            'import { defineConfig } from "@postern/core";\nexport default defineConfig({ listeners: [{ port: 2525, tls: "starttls" }] });\n',
        },
        modules: ["core"],
        line: /^postern\.config\.ts: listeners\.0\.certificate: expected a PEM file path: tls "starttls" needs a certificate and a key.*$/,
      },
      {
        name: "plugin factory refusing its options in a TS config",
        files: {
          "postern.config.mjs":
            'import recipients from "@postern/recipients";\nexport default { plugins: [recipients({ domains: ["exa mple"] })] };\n',
        },
        modules: ["core", "recipients"],
        line: /^postern\.config\.mjs: @postern\/recipients\.domains\.0: expected a domain name.*$/,
      },
    ];

    for (const { name, files, modules, line } of cases) {
      it(name, async () => {
        const dir = await configDir(files, modules);
        const result = await runCli(["check"], dir);
        expect(result.code).toBe(1);
        expect(stderrLines(result.stderr)).toHaveLength(1);
        expect(result.stderr.trimEnd()).toMatch(line);
        expect(result.stdout).toBe("");
      });
    }

    it("a config file that cannot be read", async () => {
      const dir = await configDir({});
      const result = await runCli(["check", "-c", "missing.yaml"], dir);
      expect(result.code).toBe(1);
      expect(result.stderr).toBe("missing.yaml: cannot read the file (ENOENT)\n");
    });
  });
});

describe("the postern command line", () => {
  it("prints the command list for --help and each command's usage for <command> --help", async () => {
    const dir = await configDir({});
    const overview = await runCli(["--help"], dir);
    expect(overview.code).toBe(0);
    expect(overview.stdout).toMatch(/^ {2}start +run the mail server/m);
    expect(overview.stdout).toMatch(/^ {2}check +validate the config/m);
    for (const command of ["start", "check"]) {
      const help = await runCli([command, "--help"], dir);
      expect(help.code).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^Usage: postern ${command} `));
    }
  });

  it("answers an unknown command or option with usage on stderr and exit 2", async () => {
    const dir = await configDir({});
    const unknown = await runCli(["deliver"], dir);
    expect(unknown.code).toBe(2);
    expect(unknown.stdout).toBe("");
    expect(unknown.stderr).toMatch(/^postern: unknown command "deliver"\n[\s\S]*Usage: postern <command>/);
    const badOption = await runCli(["check", "--confg", "x.yaml"], dir);
    expect(badOption.code).toBe(2);
    expect(badOption.stderr).toMatch(/^postern check: Unknown option '--confg'\nRun "postern check --help"/);
  });
});
