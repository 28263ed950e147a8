// The crash policy against a real `postern start` process: an uncaught error is logged, the server
// stops accepting, idle sessions are told 421, a message inside DATA still finishes (250, stored),
// and the process exits 70 for its supervisor to restart it.

import { readdir, readFile, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { buildMessage, connectSmtp, type RawSmtpClient } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, killRunningClis, makeTempDir, removeTempDirs, startCli } from "./test-support/cli-process.ts";

const clients: RawSmtpClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await killRunningClis();
  await removeTempDirs();
});

async function session(port: number): Promise<RawSmtpClient> {
  const client = await connectSmtp(port);
  clients.push(client);
  expect((await client.read()).code).toBe(220);
  expect((await client.command("EHLO client.test")).code).toBe(250);
  return client;
}

/** Whether a new TCP connection to the port is accepted (false: refused). */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: "127.0.0.1" });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

describe("postern start on an uncaught error", () => {
  it("logs it, stops accepting, tells idle sessions 421, finishes the message in DATA, exits 70", async () => {
    const cwd = await makeTempDir("crash");
    const port = await freePort();
    // A plugin with a bug outside any hook's promise: the error reaches the process.
    await writeFile(
      join(cwd, "buggy.mjs"),
      `export default () => ({ name: "buggy", hooks: { rcptTo(tx, rcpt) {
        if (rcpt.address.startsWith("crash@")) setTimeout(() => { throw new Error("buggy state"); }, 0);
      } } });\n`,
    );
    await writeFile(
      join(cwd, "postern.yaml"),
      `hostname: mx.test
listeners:
  - port: ${port}
plugins:
  - ./buggy.mjs
  - package: "@postern/recipients"
    options: { domains: [localhost] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`,
    );
    const cli = startCli(["start"], cwd);
    await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${port} `));

    // A message half sent when the error comes.
    const inData = await session(port);
    expect((await inData.command("MAIL FROM:<a@client.test>")).code).toBe(250);
    expect((await inData.command("RCPT TO:<postmaster@localhost>")).code).toBe(250);
    expect((await inData.command("DATA")).code).toBe(354);
    const [head, body] = buildMessage({ to: "postmaster@localhost", subject: "in flight at the crash" })
      .toString("latin1")
      .split("\r\n\r\n");
    inData.write(`${head}\r\n\r\n`);

    const idle = await session(port);
    const trigger = await session(port);
    expect((await trigger.command("MAIL FROM:<a@client.test>")).code).toBe(250);
    await trigger.command("RCPT TO:<crash@localhost>");

    // Stopping: idle sessions are told, and nothing new is accepted.
    expect((await idle.read(15_000)).code).toBe(421);
    expect(await accepts(port)).toBe(false);
    expect(cli.child.exitCode).toBe(null);

    // The message in DATA finishes and is stored, then the process goes.
    inData.write(body!);
    expect((await inData.command("\r\n.")).code).toBe(250);
    const exit = await cli.exited(20_000);
    expect(exit.code).toBe(70);
    expect(exit.stderr).toMatch(/postern: uncaught error: buggy state; stopping/);
    expect(exit.stdout).toMatch(/"level":60[^\n]*"msg":"uncaught error: stopping/);
    const stored = await readdir(join(cwd, "mail"), { recursive: true });
    const texts = await Promise.all(stored.map((name) => readFile(join(cwd, "mail", name), "utf8").catch(() => "")));
    expect(texts.filter((text) => text.includes("in flight at the crash"))).toHaveLength(1);
  });

  it("exits 70 on an unhandled rejection too", async () => {
    const cwd = await makeTempDir("crash-rejection");
    const port = await freePort();
    await writeFile(
      join(cwd, "buggy.mjs"),
      `export default () => ({ name: "buggy", hooks: { helo(session, name) {
        if (name === "crash.test") void Promise.reject(new Error("nobody awaited this"));
      } } });\n`,
    );
    await writeFile(
      join(cwd, "postern.yaml"),
      `hostname: mx.test
listeners:
  - port: ${port}
plugins:
  - ./buggy.mjs
  - package: "@postern/recipients"
    options: { domains: [localhost] }
`,
    );
    const cli = startCli(["start"], cwd);
    await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${port} `));
    const client = await connectSmtp(port);
    clients.push(client);
    expect((await client.read()).code).toBe(220);
    await client.command("EHLO crash.test");
    const exit = await cli.exited(20_000);
    expect(exit.code).toBe(70);
    expect(exit.stderr).toMatch(/postern: uncaught error: nobody awaited this; stopping/);
    expect(exit.stdout).toMatch(/"level":60[^\n]*"origin":"unhandledRejection"/);
  });
});
