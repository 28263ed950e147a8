// The default local setup: @postern/recipients claims local recipients, this store keeps them.
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import recipients from "@postern/recipients";
import { buildMessage, type SendError, startTestServer, type TestServer } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import maildir from "./index.ts";

let root: string;
let server: TestServer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "postern-maildir-compose-"));
  server = await startTestServer({
    hostname: "localhost",
    plugins: [recipients({ domains: ["localhost"], mailboxes: ["alice@localhost"] }), maildir({ root })],
  });
});
afterAll(async () => {
  await server?.stop();
  await rm(root, { recursive: true, force: true });
});

describe("recipients + maildir", () => {
  it("delivers postmaster@localhost (and the bare postmaster) into <root>/localhost/postmaster/new/", async () => {
    const raw = buildMessage({ to: "postmaster@localhost", subject: "to the postmaster" });
    const result = await server.send({ to: ["postmaster@localhost", "postmaster"], raw });
    expect(result.response).toMatch(/^250 /);
    const newDir = join(root, "localhost", "postmaster", "new");
    const delivered = await readdir(newDir);
    expect(delivered).toHaveLength(1); // both name the same mailbox: one copy
    const stored = await readFile(join(newDir, delivered[0]!));
    expect(stored.subarray(stored.length - raw.length).equals(raw)).toBe(true);
  });

  it("refuses an unknown user at RCPT, so no mailbox is ever created for it", async () => {
    const error = await server.send({ to: "nobody@localhost", raw: buildMessage() }).then(
      () => undefined,
      (caught: SendError) => caught,
    );
    expect(error?.responseCode).toBe(550);
    expect(await readdir(join(root, "localhost"))).not.toContain("nobody");
  });
});
