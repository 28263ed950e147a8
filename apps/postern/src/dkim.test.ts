// `postern dkim keygen` through the real CLI in a child process.
import { createPrivateKey } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { killRunningClis, makeTempDir, removeTempDirs, runCli } from "./test-support/cli-process.ts";

afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

/** The character-strings of the printed zone record, unquoted. */
const txtStrings = (stdout: string) => [...stdout.matchAll(/"([^"]*)"/g)].map((match) => match[1]!);

describe("postern dkim keygen", () => {
  it("writes a 2048-bit RSA key (0600) and prints the record split into ≤255-octet strings", async () => {
    const dir = await makeTempDir("dkim");
    const result = await runCli(
      ["dkim", "keygen", "--domain", "example.com", "--selector", "s2026", "--out", "keys"],
      dir,
    );
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const keyFile = join(dir, "keys", "example.com.s2026.key");
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    const key = createPrivateKey(await readFile(keyFile, "utf8"));
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(result.stdout).toContain("s2026._domainkey.example.com. IN TXT (");
    const record = result.stdout.slice(result.stdout.indexOf("IN TXT"), result.stdout.indexOf("Then sign"));
    const strings = txtStrings(record);
    expect(strings.length).toBeGreaterThan(1);
    expect(strings.every((part) => part.length <= 255)).toBe(true);
    expect(strings.join("")).toMatch(/^v=DKIM1; k=rsa; p=[A-Za-z0-9+/=]+$/);
    expect(result.stdout).toContain(`keyFile: "${keyFile}"`);
  });

  it("makes an Ed25519 key with a one-string record, and never overwrites a key file", async () => {
    const dir = await makeTempDir("dkim");
    const args = ["dkim", "keygen", "--domain", "example.com", "--selector", "ed1", "--algorithm", "ed25519"];
    const first = await runCli(args, dir);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/ed1\._domainkey\.example\.com\. IN TXT "v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}="/);
    const pem = await readFile(join(dir, "example.com.ed1.key"), "utf8");
    const second = await runCli(args, dir);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/already exists/);
    expect(await readFile(join(dir, "example.com.ed1.key"), "utf8")).toBe(pem);
  });

  it("answers a bad command line with exit 2 and one line", async () => {
    const dir = await makeTempDir("dkim");
    const result = await runCli(["dkim", "keygen", "--domain", "example.com", "--selector", "s", "--bits", "512"], dir);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^postern dkim: --bits must be 1024–8192/);
    expect((await runCli(["dkim"], dir)).stderr).toMatch(/missing subcommand: keygen/);
  });
});
