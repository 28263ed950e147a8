// Subaddress folders with @postern/recipients, over real SMTP: alice+news is delivered into the
// Maildir++ folder .news of alice's Maildir when the option says so, and into the inbox otherwise.
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "@postern/core";
import recipients from "@postern/recipients";
import { buildMessage, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import maildir, { type MaildirOptions } from "./index.ts";

let root: string | undefined;
let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  if (root) await rm(root, { recursive: true, force: true });
  server = root = undefined;
});

async function start(subaddressFolders?: MaildirOptions["subaddressFolders"]): Promise<TestServer> {
  const dir = await mkdtemp(join(tmpdir(), "postern-maildir-folders-"));
  root = dir;
  server = await startTestServer({
    plugins: [
      recipients({ domains: ["example.com"], mailboxes: ["alice@example.com", "bob@example.com"] }),
      maildir({ root: dir, ...(subaddressFolders ? { subaddressFolders } : {}) }),
    ],
  });
  return server;
}

const alice = (...path: string[]) => join(root!, "example.com", "alice", ...path);
const count = async (dir: string) => (await readdir(dir).catch(() => [])).length;

describe("subaddress folders", () => {
  it("are off by default: alice+news goes to alice's inbox", async () => {
    const test = await start();
    await test.send({ to: "alice+news@example.com", raw: buildMessage() });
    expect(await count(alice("new"))).toBe(1);
    expect(await readdir(alice())).toEqual(["cur", "new", "tmp"]);
  });

  it('"create": into .news, made when missing (+News the same folder); a detail that is no plain name goes to the inbox', async () => {
    const test = await start("create");
    await test.send({ to: "alice+news@example.com", raw: buildMessage() });
    await test.send({ to: "Alice+News@example.com", raw: buildMessage() });
    await test.send({ to: ["alice+lists.postern@example.com", "bob+news@example.com"], raw: buildMessage() });
    await test.send({ to: "alice+a=b@example.com", raw: buildMessage() });
    expect(await count(alice(".news", "new"))).toBe(2);
    expect((await readdir(alice(".news"))).sort()).toEqual(["cur", "new", "tmp"]);
    expect(await count(alice(".lists.postern", "new"))).toBe(1);
    expect(await count(join(root!, "example.com", "bob", ".news", "new"))).toBe(1);
    expect(await count(alice("new"))).toBe(1);
  });

  it('"existing": into a folder that exists, the inbox otherwise (a sender cannot make folders)', async () => {
    const test = await start("existing");
    await test.send({ to: "alice+news@example.com", raw: buildMessage() });
    expect(await count(alice("new"))).toBe(1);
    expect(await readdir(alice())).toEqual(["cur", "new", "tmp"]);
    await mkdir(alice(".news", "new"), { recursive: true }); // the user made the folder (cur/, tmp/ missing)
    await test.send({ to: "alice+news@example.com", raw: buildMessage() });
    expect(await count(alice(".news", "new"))).toBe(1);
    expect((await readdir(alice(".news"))).sort()).toEqual(["cur", "new", "tmp"]);
    expect(await count(alice("new"))).toBe(1);
  });

  it("refuses a bad value in one line naming the key", () => {
    expect(() => maildir({ root: "x", subaddressFolders: "yes" as never })).toThrow(ConfigError);
    expect(() => maildir({ root: "x", subaddressFolders: "yes" as never })).toThrow(
      /^@postern\/store-maildir\.subaddressFolders: expected "off", "existing" or "create" \(got "yes"\)$/,
    );
  });
});
