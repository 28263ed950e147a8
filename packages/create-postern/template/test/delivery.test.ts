// The site as it is: `postern start` with this folder's config, on a free port and with its data
// in a temporary folder, takes a message for example.com over SMTP and stores it in the Maildir.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { buildMessage, sendMail } from "@postern/testing";

const site = fileURLToPath(new URL("..", import.meta.url));
const postern = fileURLToPath(new URL("bin/postern.js", import.meta.resolve("postern/package.json")));

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

test("postern start takes a message for example.com and stores it in the Maildir", async () => {
  const data = await mkdtemp(join(tmpdir(), "my-mx-test-"));
  const port = await freePort();
  const server = spawn(process.execPath, [postern, "start"], {
    cwd: site,
    env: { ...process.env, POSTERN_PORT: String(port), POSTERN_DATA: data },
    stdio: ["ignore", "ignore", "pipe"],
  });
  try {
    let stderr = "";
    server.stderr.setEncoding("utf8");
    for await (const chunk of server.stderr) {
      stderr += chunk;
      if (stderr.includes("listening on")) break;
    }
    assert.match(stderr, /listening on 127\.0\.0\.1:/);
    const sent = await sendMail({
      port,
      to: "postmaster@example.com",
      raw: buildMessage({ to: "postmaster@example.com" }),
    });
    assert.match(sent.response, /^250 /);
    assert.equal((await readdir(join(data, "maildir/example.com/postmaster/new"))).length, 1);
  } finally {
    server.kill("SIGTERM");
    await once(server, "exit");
    await rm(data, { recursive: true, force: true });
  }
});
