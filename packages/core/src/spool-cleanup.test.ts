// A spool file the disk will not let core remove (read-only, failing) must not change the reply:
// the message was stored, so the client gets its 250, and the file is removed later.
import { mkdir, mkdtemp, readdir, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { buildMessage, bulkyText, claimRecipients, startTestServer, type TestServer } from "../../testing/src/index.ts";
import { accept, type Plugin } from "./index.ts";
import { removeLeftoverFiles } from "./leftover-files.ts";

let server: TestServer | undefined;
let spoolDir: string | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
  if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
});

it("answers 250 for a stored message whose spool file cannot be removed, and removes it later", async () => {
  spoolDir = await mkdtemp(join(tmpdir(), "postern-spool-cleanup-"));
  const spool = spoolDir;
  const stored: Buffer[] = [];
  // Reads the message, then puts a non-empty directory where its spool file was: removing that
  // path fails (EISDIR) as removing a file on a read-only disk does (EROFS).
  const blocker: Plugin = {
    name: "test:spool-blocker",
    hooks: {
      async queue(_transaction, message) {
        const chunks: Buffer[] = [];
        for await (const chunk of message.stream()) chunks.push(chunk as Buffer);
        stored.push(Buffer.concat(chunks));
        const [file] = (await readdir(spool)).filter((name) => name.endsWith(".eml"));
        if (!file) throw new Error("the message was not spooled to a file");
        await rename(join(spool, file), join(spool, `${file}.moved`));
        await mkdir(join(spool, file, "inside"), { recursive: true });
        return accept();
      },
    },
  };
  server = await startTestServer({
    plugins: [claimRecipients(), blocker],
    config: { spoolDir: spool, limits: { memoryThreshold: 16 * 1024 } },
  });
  const raw = buildMessage({ to: "alice@example.com", text: bulkyText(64 * 1024) });
  const result = await server.send({ to: "alice@example.com", raw });
  expect(result.response).toMatch(/^250 /);
  expect(stored).toHaveLength(1);

  const [blocked] = (await readdir(spool)).filter((name) => name.endsWith(".eml"));
  expect(blocked).toBeDefined();
  expect(await removeLeftoverFiles()).toEqual([join(spool, blocked!)]);
  // The disk lets go again: the next try removes it.
  await rm(join(spool, blocked!), { recursive: true });
  expect(await removeLeftoverFiles()).toEqual([]);
});
