// `postern check` as a preflight, through the real CLI: each bad input the server would trip over
// later is one line naming the file and the key, every one of them in one run; warnings for
// configs that run but fail every message or relay for strangers; --strict.
import { chmod, copyFile, mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createTestCertificate, startFakeDns, type TestCertificate } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort, killRunningClis, makeTempDir, removeTempDirs, runCli } from "./test-support/cli-process.ts";

afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

let good: TestCertificate;
let other: TestCertificate;
beforeAll(async () => {
  good = await createTestCertificate(["mx.example.org"]);
  other = await createTestCertificate(["other.example.org"]);
});

async function site(files: Record<string, string>): Promise<string> {
  const dir = await makeTempDir("preflight");
  for (const [name, text] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), text);
  }
  return dir;
}

/** A YAML config that stores mail and claims recipients, with `listener` and `extra` settings added. */
function yamlWith(options: { listener?: string; plugins?: string; top?: string; root?: string } = {}): string {
  return `hostname: mx.example.org
${options.top ?? ""}
listeners:
  - port: 2525
${options.listener ?? ""}
plugins:
  - package: "@postern/recipients"
    options:
      domains: [example.org]
${options.plugins ?? ""}
  - package: "@postern/store-maildir"
    options:
      root: ${options.root ?? "./mail"}
`;
}

const tlsListener = (certificate: string, key: string) =>
  `    tls: starttls\n    certificate: ${certificate}\n    key: ${key}\n`;

function lines(stderr: string): string[] {
  return stderr.trimEnd().split("\n");
}

describe("postern check verifies TLS files", () => {
  it("passes a readable certificate with its own key", async () => {
    const dir = await site({ "postern.yaml": yamlWith({ listener: tlsListener("./tls.crt", "./tls.key") }) });
    await copyFile(good.certificate, join(dir, "tls.crt"));
    await copyFile(good.key, join(dir, "tls.key"));
    await chmod(join(dir, "tls.key"), 0o600);
    const result = await runCli(["check"], dir);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^postern\.yaml: valid$/m);
  });

  const cases: { name: string; files: (dir: string) => Promise<void>; line: string }[] = [
    {
      name: "a missing certificate",
      files: async (dir) => copyFile(good.key, join(dir, "tls.key")),
      line: "postern.yaml: listeners.0.certificate: cannot read ./tls.crt (ENOENT)",
    },
    {
      name: "a certificate that is not PEM",
      files: async (dir) => {
        await writeFile(join(dir, "tls.crt"), "this is not a certificate\n");
        await copyFile(good.key, join(dir, "tls.key"));
      },
      line: 'postern.yaml: listeners.0.certificate: ./tls.crt is not a PEM certificate ("-----BEGIN CERTIFICATE-----")',
    },
    {
      name: "a certificate that cannot be read",
      files: async (dir) => {
        // A directory in its place: unreadable as a file even for root, who reads any mode.
        await mkdir(join(dir, "tls.crt"));
        await copyFile(good.key, join(dir, "tls.key"));
      },
      line: "postern.yaml: listeners.0.certificate: cannot read ./tls.crt (EISDIR)",
    },
    {
      name: "a key that is not PEM",
      files: async (dir) => {
        await copyFile(good.certificate, join(dir, "tls.crt"));
        await writeFile(join(dir, "tls.key"), "garbage\n", { mode: 0o600 });
      },
      line: "postern.yaml: listeners.0.key: ./tls.key is not a PEM private key (an encrypted key cannot be used: decrypt it with openssl)",
    },
    {
      name: "a key that belongs to another certificate",
      files: async (dir) => {
        await copyFile(good.certificate, join(dir, "tls.crt"));
        await copyFile(other.key, join(dir, "tls.key"));
        await chmod(join(dir, "tls.key"), 0o600);
      },
      line: "postern.yaml: listeners.0.key: ./tls.key is not the key of the certificate in ./tls.crt",
    },
  ];
  for (const { name, files, line } of cases) {
    it(`reports ${name} as one line and exits 1`, async () => {
      const dir = await site({ "postern.yaml": yamlWith({ listener: tlsListener("./tls.crt", "./tls.key") }) });
      await files(dir);
      const result = await runCli(["check"], dir);
      expect(result.code).toBe(1);
      expect(lines(result.stderr)).toEqual([line, "postern check: 1 error, 0 warnings"]);
      expect(result.stdout).toBe("");
    });
  }

  it("warns about a certificate for another name and a world-readable key", async () => {
    const dir = await site({ "postern.yaml": yamlWith({ listener: tlsListener("./tls.crt", "./tls.key") }) });
    await copyFile(other.certificate, join(dir, "tls.crt"));
    await copyFile(other.key, join(dir, "tls.key"));
    await chmod(join(dir, "tls.key"), 0o644);
    const result = await runCli(["check"], dir);
    expect(result.code).toBe(0);
    expect(lines(result.stderr)).toEqual([
      "postern.yaml: warning: listeners.0.key: ./tls.key is readable by every user (mode 644); chmod 600 or 640",
      "postern.yaml: warning: listeners.0.certificate: ./tls.crt is for other.example.org, not for the hostname mx.example.org (clients checking names will refuse it)",
      "postern check: 0 errors, 2 warnings",
    ]);
  });
});

describe("postern check verifies the directories the server writes", () => {
  it("refuses a Maildir root on /proc", async () => {
    const dir = await site({ "postern.yaml": yamlWith({ root: "/proc/postern-test/mail" }) });
    const result = await runCli(["check"], dir);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      "postern.yaml: plugins.1.options.root: /proc/postern-test/mail is on proc, a kernel pseudo file system; expected a directory on a real disk for the Maildir root",
      "postern check: 1 error, 0 warnings",
    ]);
  });

  it("refuses a Maildir root that is a file, and a spool on /sys, in one run", async () => {
    const dir = await site({
      "postern.yaml": yamlWith({ root: "./mail", top: "spoolDir: /sys/postern-spool" }),
      mail: "a file where the Maildir root should be\n",
    });
    const result = await runCli(["check"], dir);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      "postern.yaml: spoolDir: /sys/postern-spool is on sys, a kernel pseudo file system; expected a directory on a real disk for the spool of messages being received",
      "postern.yaml: plugins.1.options.root: ./mail is not a directory",
      "postern check: 2 errors, 0 warnings",
    ]);
  });

  it("reads a TS config's Maildir root relative to the config's folder", async () => {
    const dir = await site({
      "postern.config.ts": `import recipients from "@postern/recipients";
import maildir from "@postern/store-maildir";
export default { plugins: [recipients({ domains: ["example.org"] }), maildir({ root: "./taken" })] };
`,
      taken: "a file\n",
    });
    const result = await runCli(["check", "-c", join(dir, "postern.config.ts")], await makeTempDir("elsewhere"));
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      `${join(dir, "postern.config.ts")}: plugins.1.options.root: ./taken is not a directory`,
      "postern check: 1 error, 0 warnings",
    ]);
  });

  it("reports a DKIM key file that is missing", async () => {
    const dir = await site({
      "postern.yaml": yamlWith({
        plugins: `  - package: "@postern/dkim"
    options:
      verify: false
      sign: { keys: [{ domain: example.org, selector: s1, keyFile: ./dkim/s1.key }] }
`,
      }),
    });
    const result = await runCli(["check"], dir);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      "postern.yaml: plugins.1.options.sign.keys.0.keyFile: cannot read ./dkim/s1.key (ENOENT)",
      "postern check: 1 error, 0 warnings",
    ]);
  });
});

describe("postern check asks the configured DNS servers", () => {
  let dns: Awaited<ReturnType<typeof startFakeDns>>;
  beforeAll(async () => {
    dns = await startFakeDns({});
  });
  afterAll(async () => {
    await dns?.close();
  });

  it("passes a server that answers and reports one that does not", async () => {
    const silent = `127.0.0.1:${await freePort()}`;
    const dir = await site({
      "postern.yaml": yamlWith({ top: `dns:\n  servers: ["${dns.servers[0]}", "${silent}"]\n  timeoutMs: 1500` }),
    });
    const result = await runCli(["check"], dir);
    expect(result.code).toBe(1);
    expect(lines(result.stderr)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^postern\\.yaml: dns\\.servers\\.1: ${silent} does not answer DNS queries \\((connection refused|no answer within 1500 ms)\\)$`,
        ),
      ),
      "postern check: 1 error, 0 warnings",
    ]);
  });
});

describe("postern check warns about configs that run but fail mail or relay for strangers", () => {
  it("warns about no recipient plugin and no storage; --strict makes that exit 1", async () => {
    const dir = await site({ "postern.yaml": "hostname: mx.example.org\nlisteners:\n  - port: 2525\n" });
    const plain = await runCli(["check"], dir);
    expect(plain.code).toBe(0);
    expect(lines(plain.stderr)).toEqual([
      "postern.yaml: warning: plugins: no plugin claims recipients (rcptTo), so every RCPT TO is refused with 550 5.7.1; add @postern/recipients",
      "postern.yaml: warning: plugins: no plugin stores mail (queue), so every message is deferred with 451 4.3.0; add @postern/store-maildir or another store",
      "postern check: 0 errors, 2 warnings",
    ]);
    expect(plain.stdout).toContain("postern.yaml: valid");

    const strict = await runCli(["check", "--strict"], dir);
    expect(strict.code).toBe(1);
    expect(lines(strict.stderr).at(-1)).toBe("postern check: 0 errors, 2 warnings (--strict: warnings fail)");
    expect(strict.stdout).toBe("");
  });

  it("warns about relay networks holding the internet, PROXY trust for anyone and AUTH in clear", async () => {
    const dir = await site({
      "postern.yaml": `hostname: mx.example.org
listeners:
  - address: 0.0.0.0
    port: 2525
    proxy: ["0.0.0.0/0"]
    auth: optional
    allowInsecureAuth: true
plugins:
  - package: "@postern/recipients"
    options:
      domains: [example.org]
      relay: { networks: ["192.168.0.0/16", "0.0.0.0/0", "198.0.0.0/8"] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`,
    });
    const result = await runCli(["check"], dir);
    expect(result.code).toBe(0);
    expect(lines(result.stderr)).toEqual([
      "postern.yaml: warning: plugins.0.options.relay.networks.1: relays mail for every address on the internet: an open relay",
      "postern.yaml: warning: plugins.0.options.relay.networks.2: relays mail for 198.0.0.0/8, public addresses far beyond one site: an open relay",
      "postern.yaml: warning: listeners.0.proxy.0: believes PROXY headers from 0.0.0.0/0: any client there can claim any address, a relay network's included",
      'postern.yaml: warning: listeners.0.allowInsecureAuth: offers AUTH without TLS on 0.0.0.0: passwords cross the network in clear; use tls "starttls" or "implicit"',
      "postern check: 0 errors, 4 warnings",
    ]);
  });
});
