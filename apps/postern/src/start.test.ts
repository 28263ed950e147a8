// `postern start` as an operator runs it: a child process in a fresh working directory, driven by
// a real SMTP client, stopped with signals.
import { once } from "node:events";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { buildMessage, connectSmtp, sendMail } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  freePort,
  killRunningClis,
  makeTempDir,
  type RunningCli,
  removeTempDirs,
  runCli,
  startCli,
} from "./test-support/cli-process.ts";

afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

async function startDefault(extraArgs: string[] = []): Promise<{ cli: RunningCli; port: number; cwd: string }> {
  const cwd = await makeTempDir("start");
  const port = await freePort();
  const cli = startCli(["start", "--port", String(port), ...extraArgs], cwd);
  await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${port} `));
  return { cli, port, cwd };
}

async function newMessages(cwd: string, mailbox: string): Promise<string[]> {
  const dir = join(cwd, "data/maildir", mailbox, "new");
  const names = await readdir(dir);
  return Promise.all(names.map((name) => readFile(join(dir, name), "utf8")));
}

describe("postern start with the embedded default", () => {
  it("accepts mail for localhost and every --domain into ./data/maildir, and stops on SIGTERM", async () => {
    const { cli, port, cwd } = await startDefault(["--domain", "example.org", "--domain", "example.net"]);
    expect(cli.stderr()).toContain("accepting mail for localhost, example.org, example.net");

    const result = await sendMail({
      port,
      to: "postmaster@localhost",
      raw: buildMessage({ to: "postmaster@localhost", subject: "default config works" }),
    });
    expect(result.response).toMatch(/^250 2\.0\.0 /);
    const [local] = await newMessages(cwd, "localhost/postmaster");
    expect(local).toMatch(/^Received: from client\.test /);
    expect(local).toContain("Subject: default config works");

    await sendMail({
      port,
      to: "sales@example.net",
      raw: buildMessage({ to: "sales@example.net", subject: "second domain" }),
    });
    const [other] = await newMessages(cwd, "example.net/sales");
    expect(other).toContain("Subject: second domain");

    // No open relay: a domain that isn't ours is refused.
    await expect(
      sendMail({ port, to: "someone@elsewhere.test", raw: buildMessage({ to: "someone@elsewhere.test" }) }),
    ).rejects.toMatchObject({ responseCode: 550 });

    process.kill(cli.pid, "SIGTERM");
    const exit = await cli.exited();
    expect(exit.code).toBe(0);
    expect(exit.stderr).toContain("postern: stopped");
  });

  it("on SIGTERM tells an idle session 421 and exits 0", async () => {
    const { cli, port } = await startDefault();
    const client = await connectSmtp(port);
    try {
      expect((await client.read()).code).toBe(220);
      expect((await client.command("EHLO client.test")).code).toBe(250);
      process.kill(cli.pid, "SIGTERM");
      const goodbye = await client.read(10_000);
      expect(goodbye.code).toBe(421);
      await client.closed(10_000);
    } finally {
      client.close();
    }
    const exit = await cli.exited();
    expect(exit.code).toBe(0);
    expect(exit.signal).toBeNull();
  });

  it("lets a message being received finish before stopping", async () => {
    const { cli, port, cwd } = await startDefault();
    const client = await connectSmtp(port);
    try {
      await client.read();
      await client.command("EHLO client.test");
      expect((await client.command("MAIL FROM:<sender@example.org>")).code).toBe(250);
      expect((await client.command("RCPT TO:<postmaster@localhost>")).code).toBe(250);
      expect((await client.command("DATA")).code).toBe(354);
      client.write(buildMessage({ subject: "in flight" }).subarray(0, 40));
      process.kill(cli.pid, "SIGTERM");
      await cli.waitForStderr(/SIGTERM received/);
      client.write(buildMessage({ subject: "in flight" }).subarray(40));
      const reply = await client.command(".");
      expect(reply.code).toBe(250);
    } finally {
      client.close();
    }
    expect((await cli.exited()).code).toBe(0);
    const [stored] = await newMessages(cwd, "localhost/postmaster");
    expect(stored).toContain("Subject: in flight");
  });

  it("stops at once on a second SIGTERM, without waiting for the message in flight", async () => {
    const { cli, port } = await startDefault();
    const client = await connectSmtp(port);
    try {
      await client.read();
      await client.command("EHLO client.test");
      await client.command("MAIL FROM:<sender@example.org>");
      await client.command("RCPT TO:<postmaster@localhost>");
      expect((await client.command("DATA")).code).toBe(354);
      client.write("Subject: never finished\r\n");
      process.kill(cli.pid, "SIGTERM");
      await cli.waitForStderr(/SIGTERM received/);
      process.kill(cli.pid, "SIGTERM");
      const exit = await cli.exited();
      expect(exit.code).toBe(128 + 15);
      expect(exit.stderr).toContain("SIGTERM again: stopping now");
      expect(exit.stderr).not.toContain("postern: stopped");
    } finally {
      client.close();
    }
  });
});

describe("postern start failing to start", () => {
  it("reports a port in use as one line and exits 1", async () => {
    const blocker = createServer();
    blocker.listen(0, "127.0.0.1");
    await once(blocker, "listening");
    const { port } = blocker.address() as { port: number };
    try {
      const cwd = await makeTempDir("start");
      const result = await runCli(["start", "--port", String(port)], cwd);
      expect(result.code).toBe(1);
      expect(result.stderr.trimEnd().split("\n")).toEqual([
        `postern start: listeners.0: cannot listen on 127.0.0.1:${port}: EADDRINUSE`,
      ]);
    } finally {
      blocker.close();
    }
  });

  it("reports missing TLS files, one line each naming the config file and the key, and exits 1", async () => {
    const cwd = await makeTempDir("start");
    await writeFile(
      join(cwd, "postern.yaml"),
      `listeners:\n  - port: ${await freePort()}\n    tls: starttls\n    certificate: ./missing.crt\n    key: ./missing.key\n`,
    );
    const result = await runCli(["start"], cwd);
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split("\n")).toEqual([
      "postern.yaml: listeners.0.certificate: cannot read ./missing.crt (ENOENT)",
      "postern.yaml: listeners.0.key: cannot read ./missing.key (ENOENT)",
      "postern.yaml: warning: plugins: no plugin claims recipients (rcptTo), so every RCPT TO is refused with 550 5.7.1; add @postern/recipients",
      "postern.yaml: warning: plugins: no plugin stores mail (queue), so every message is deferred with 451 4.3.0; add @postern/store-maildir or another store",
      "postern start: 2 errors, 2 warnings",
    ]);
  });
});

describe("postern start never hangs before listening", () => {
  const hangingPlugin =
    'export default () => ({ name: "waits-forever", setup() { return new Promise(() => {}); }, hooks: {} });\n';
  const configWith = (port: number, extra: string) => `listeners:
  - port: ${port}
plugins:
${extra}  - package: "@postern/recipients"
    options: { domains: [localhost] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`;

  it("refuses a Maildir root on /proc at once, as one line", async () => {
    const cwd = await makeTempDir("start");
    await writeFile(
      join(cwd, "postern.yaml"),
      configWith(await freePort(), "").replace("root: ./mail", "root: /proc/postern-start-test"),
    );
    const result = await runCli(["start"], cwd);
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split("\n")).toEqual([
      "postern.yaml: plugins.1.options.root: /proc/postern-start-test is on proc, a kernel pseudo file system; expected a directory on a real disk for the Maildir root",
      "postern start: 1 error, 0 warnings",
    ]);
  });

  it("names the plugin whose setup does not finish in time and exits 1", async () => {
    const cwd = await makeTempDir("start");
    await writeFile(join(cwd, "waits-forever.mjs"), hangingPlugin);
    await writeFile(join(cwd, "postern.yaml"), configWith(await freePort(), "  - ./waits-forever.mjs\n"));
    const result = await runCli(["start", "--setup-timeout", "1"], cwd);
    expect(result.code).toBe(1);
    expect(result.stderr.trimEnd().split("\n")).toEqual([
      "postern.yaml: waits-forever failed to set up: its setup did not finish within 1 s (plugins.0); something it waits for does not answer — a directory on a network or pseudo file system, a server, a lock — or raise --setup-timeout if it is only slow",
    ]);
  });

  it("stops on the first SIGTERM while a setup is still running", async () => {
    const cwd = await makeTempDir("start");
    await writeFile(join(cwd, "postern.yaml"), configWith(await freePort(), "  - ./waits-forever.mjs\n"));
    // The plugin says when its setup started waiting, so the signal comes during start-up.
    await writeFile(
      join(cwd, "waits-forever.mjs"),
      hangingPlugin.replace("setup() {", 'setup() { process.stderr.write("waiting in setup\\n");'),
    );
    const cli = startCli(["start"], cwd);
    await cli.waitForStderr(/waiting in setup/);
    process.kill(cli.pid, "SIGTERM");
    const exit = await cli.exited();
    expect(exit.code).toBe(128 + 15);
    expect(exit.stderr).toContain("postern: SIGTERM during start-up: stopping");
  });
});

describe("postern start and SIGHUP", () => {
  it("keeps serving after SIGHUP (what systemd's reload sends), also without TLS listeners", async () => {
    const { cli, port } = await startDefault();
    process.kill(cli.pid, "SIGHUP");
    await cli.waitForStderr(/SIGHUP: configuration reloaded/);
    const result = await sendMail({ port, to: "postmaster@localhost", raw: buildMessage({ subject: "after HUP" }) });
    expect(result.response).toMatch(/^250 /);
    process.kill(cli.pid, "SIGTERM");
    expect((await cli.exited()).code).toBe(0);
  });
});
