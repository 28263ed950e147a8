// `postern address test` through the real CLI in a child process: the config's @postern/recipients
// plugin resolves each address with its own alias file (relative to the config's folder), maps
// and SRS secret, as the running server would.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { killRunningClis, makeTempDir, removeTempDirs, runCli } from "./test-support/cli-process.ts";

afterEach(async () => {
  await killRunningClis();
});
afterAll(async () => {
  await removeTempDirs();
});

async function site(): Promise<string> {
  const dir = await makeTempDir("address");
  await writeFile(join(dir, "aliases"), "team: bob, ghost\n");
  await writeFile(
    join(dir, "postern.yaml"),
    `hostname: mx.example.com
listeners:
  - port: 2528
plugins:
  - package: "@postern/recipients"
    options:
      domains: [example.com]
      mailboxes: [alice@example.com, bob@example.com]
      aliases:
        files: [aliases]
        map:
          aliases:
            info@example.com: [alice, team, Friend@Elsewhere.example]
            a@example.com: b
            b@example.com: a
      srs: { domain: fwd.example.com, secrets: ["address-test-secret"] }
      relay: { networks: [10.0.0.0/8] }
`,
  );
  return dir;
}

describe("postern address test", () => {
  it("shows mailboxes, details, forwards with their SRS sender, dropped members, refusals and relay", async () => {
    const cwd = await site();
    const result = await runCli(
      [
        "address",
        "test",
        "alice+news@example.com",
        "info@example.com",
        "nobody@example.com",
        "a@example.com",
        "x@elsewhere.example",
        "--from",
        "sender@origin.example",
      ],
      cwd,
    );
    expect(result.stderr).toBe("");
    expect(result.code).toBe(1); // some addresses are refused
    const lines = result.stdout.split("\n");
    expect(lines[0]).toBe("directory (postern.yaml): srs → aliases → mailboxes → catch-all");
    expect(lines[1]).toBe("alice+news@example.com: accepted, 1 recipient(s)");
    expect(lines[2]).toMatch(/^ {2}alice@example\.com {2}local {2}mailbox \(detail "news"\)/);
    expect(lines[3]).toBe("info@example.com: accepted, 3 recipient(s)");
    expect(lines[5]).toMatch(
      /^ {2}bob@example\.com +local +mailbox +via info@example\.com → team@example\.com → bob@example\.com$/,
    );
    expect(lines[6]).toMatch(
      /^ {2}Friend@elsewhere\.example +forward +forward, sender SRS0=[^=]{4}=[A-Z2-7]{2}=origin\.example=sender@fwd\.example\.com /,
    );
    expect(lines[7]).toBe(
      "  dropped ghost@example.com (unknown, via info@example.com → team@example.com → ghost@example.com)",
    );
    expect(lines[8]).toBe("nobody@example.com: refused at RCPT: 550 5.1.1 No such user here");
    expect(lines[9]).toBe("a@example.com: refused at RCPT: 550 5.4.6 Alias loop detected for this address");
    expect(lines[10]).toBe(
      "x@elsewhere.example: elsewhere.example is not a local domain: relayed (route relay) for authenticated sessions and clients in 10.0.0.0/8; anyone else gets 550 5.7.1",
    );

    const json = await runCli(["address", "test", "alice+news@example.com", "--json"], cwd);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({
      kind: "local",
      targets: [{ address: "alice@example.com", route: "local", detail: "news" }],
    });
  });

  it("says so when the config has no @postern/recipients plugin, and refuses a bad command line", async () => {
    const cwd = await makeTempDir("address-none");
    await writeFile(join(cwd, "postern.yaml"), "hostname: mx.example.com\nlisteners:\n  - port: 2529\nplugins: []\n");
    const none = await runCli(["address", "test", "a@example.com"], cwd);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe("postern address: postern.yaml has no @postern/recipients plugin\n");
    const usage = await runCli(["address", "show", "a@example.com"], cwd);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('expected "test"');
  });
});
