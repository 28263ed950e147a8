// `postern mailbox` through the real CLI in a child process, reading what @postern/store-postgres
// stored (the real PostgreSQL at DATABASE_URL, one schema for this file).
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import storePostgres, { openPostgresMailStore } from "@postern/store-postgres";
import { buildMessage, claimRecipients, startTestServer } from "@postern/testing";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { killRunningClis, makeTempDir, removeTempDirs, runCli } from "./test-support/cli-process.ts";

const databaseUrl = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const schema = `cli_mailbox_${randomBytes(4).toString("hex")}`;
const reader = openPostgresMailStore({ connectionString: databaseUrl, schema });
let dir: string;

beforeAll(async () => {
  const server = await startTestServer({
    plugins: [claimRecipients(), storePostgres({ connectionString: databaseUrl, schema })],
  });
  try {
    for (const subject of ["first", "second"]) {
      await server.send({ to: "alice@example.test", raw: buildMessage({ subject }) });
    }
  } finally {
    await server.stop();
  }
});
afterEach(async () => {
  await killRunningClis();
});
afterAll(async () => {
  await reader.close();
  execFileSync("psql", [databaseUrl, "-q", "-c", `DROP SCHEMA IF EXISTS "${schema}" CASCADE`], { stdio: "ignore" });
  await removeTempDirs();
});

async function configDir(): Promise<string> {
  dir ??= await makeTempDir("mailbox");
  await writeFile(
    join(dir, "postern.yaml"),
    `hostname: mx.example.org
listeners:
  - port: 2527
plugins:
  - package: "@postern/store-postgres"
    options:
      connectionString: "${databaseUrl}"
      schema: ${schema}
`,
  );
  return dir;
}

describe("postern mailbox", () => {
  it("lists a mailbox, shows a message as stored, deletes it and prunes old ones", async () => {
    const cwd = await configDir();
    const list = await runCli(["mailbox", "list", "alice@example.test"], cwd);
    expect(list.stderr).toBe("");
    expect(list.code).toBe(0);
    const lines = list.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^id\s+received\s+from\s+size\s+subject$/);
    expect(lines.slice(1).map((line) => line.split(/\s+/).at(-1))).toEqual(["first", "second"]);
    expect(lines[1]).toMatch(/^\d+\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+sender@example\.org\s+\d+\s+first$/);

    const [first, second] = await reader.list("alice@example.test");
    const show = await runCli(["mailbox", "show", first!.id], cwd);
    expect(show.code).toBe(0);
    expect(Buffer.from(show.stdout, "utf8").equals(await reader.read(first!.id))).toBe(true);

    const deleted = await runCli(["mailbox", "delete", first!.id], cwd);
    expect(deleted.stdout).toBe(`deleted ${first!.id}\n`);
    expect((await reader.list("alice@example.test")).map((copy) => copy.id)).toEqual([second!.id]);
    const again = await runCli(["mailbox", "delete", first!.id], cwd);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe(`no message with ID ${first!.id}\n`);

    execFileSync("psql", [
      databaseUrl,
      "-q",
      "-c",
      `UPDATE "${schema}".messages SET received_at = now() - interval '30 days'`,
    ]);
    const prune = await runCli(["mailbox", "prune", "--days", "7"], cwd);
    expect(prune.stdout).toBe("deleted 1 message(s) received more than 7 day(s) ago\n");
    expect(await reader.list("alice@example.test")).toEqual([]);
  });

  it("says so when the config has no PostgreSQL store, and refuses a bad command line", async () => {
    const cwd = await makeTempDir("mailbox-none");
    await writeFile(join(cwd, "postern.yaml"), "hostname: mx.example.org\nlisteners:\n  - port: 2527\n");
    const none = await runCli(["mailbox", "list", "alice@example.test"], cwd);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^postern mailbox: .*postern\.yaml has no @postern\/store-postgres plugin\n$/);
    const bad = await runCli(["mailbox", "prune"], cwd);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/prune: expected --days <n>/);
  });
});
