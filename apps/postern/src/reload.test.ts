// SIGHUP and uncaught errors against a real `postern start` process: the whole configuration
// reloads (with and without TLS), a bad one is named in one line and the old one keeps serving,
// sessions in flight finish on the old configuration, and an uncaught error ends the process.
import { X509Certificate } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { buildMessage, connectSmtp, createTestCertificate, type RawSmtpClient, sendMail } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, killRunningClis, makeTempDir, removeTempDirs, startCli } from "./test-support/cli-process.ts";

const clients: RawSmtpClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await killRunningClis();
  await removeTempDirs();
});

const yaml = (options: {
  port: number;
  domains: string[];
  tls?: { certificate: string; key: string };
  extra?: string;
}) => `hostname: mx.test
listeners:
  - port: ${options.port}${
    options.tls
      ? `
    tls: starttls
    certificate: ${options.tls.certificate}
    key: ${options.tls.key}`
      : ""
  }
plugins:
${options.extra ?? ""}  - package: "@postern/recipients"
    options: { domains: [${options.domains.join(", ")}] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`;

async function session(port: number): Promise<RawSmtpClient> {
  const client = await connectSmtp(port);
  clients.push(client);
  expect((await client.read()).code).toBe(220);
  expect((await client.command("EHLO client.test")).code).toBe(250);
  return client;
}

async function rcpt(client: RawSmtpClient, address: string): Promise<number> {
  expect((await client.command("MAIL FROM:<sender@client.test>")).code).toBe(250);
  const code = (await client.command(`RCPT TO:<${address}>`)).code;
  expect((await client.command("RSET")).code).toBe(250);
  return code;
}

describe("postern start on SIGHUP", () => {
  it("reloads the whole configuration without TLS; a session in flight keeps the old one; a bad file is one line", async () => {
    const cwd = await makeTempDir("reload");
    const port = await freePort();
    const file = join(cwd, "postern.yaml");
    await writeFile(file, yaml({ port, domains: ["localhost"] }));
    const cli = startCli(["start"], cwd);
    await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${port} `));

    const before = await session(port);
    expect(await rcpt(before, "sales@example.org")).toBe(550);

    await writeFile(file, yaml({ port, domains: ["localhost", "example.org"] }));
    process.kill(cli.pid, "SIGHUP");
    await cli.waitForStderr(/SIGHUP: configuration reloaded from postern\.yaml \(2 plugins/);

    // New sessions use the new configuration; the session opened before keeps the old one.
    const after = await session(port);
    expect(await rcpt(after, "sales@example.org")).toBe(250);
    expect(await rcpt(before, "sales@example.org")).toBe(550);
    const sent = await sendMail({ port, to: "sales@example.org", raw: buildMessage({ to: "sales@example.org" }) });
    expect(sent.response).toMatch(/^250 /);

    // A broken file: one line naming the file and the key; the running configuration stays.
    await writeFile(file, yaml({ port, domains: ["localhost"] }).replace(`port: ${port}`, "port: seventy"));
    process.kill(cli.pid, "SIGHUP");
    const [refusal] = await cli.waitForStderr(
      /SIGHUP: postern\.yaml: listeners\.0\.port: [^\n]*still serving the previous configuration/,
    );
    expect(refusal).not.toContain("\n");
    expect(await rcpt(await session(port), "sales@example.org")).toBe(250);

    // A plugin that cannot be made is named too.
    await writeFile(file, yaml({ port, domains: ["localhost"], extra: '  - package: "@postern/no-such-plugin"\n' }));
    process.kill(cli.pid, "SIGHUP");
    await cli.waitForStderr(
      /SIGHUP: postern\.yaml: plugins\.0[^\n]*no-such-plugin[^\n]*still serving the previous configuration/,
    );
    expect(await rcpt(await session(port), "sales@example.org")).toBe(250);

    process.kill(cli.pid, "SIGTERM");
    expect((await cli.exited()).code).toBe(0);
  });

  it("reloads with a TLS listener: new sessions get the new certificate", async () => {
    const cwd = await makeTempDir("reload-tls");
    const port = await freePort();
    const first = await createTestCertificate(["mx.test"], { dir: cwd });
    const file = join(cwd, "postern.yaml");
    await writeFile(file, yaml({ port, domains: ["localhost"], tls: first }));
    const cli = startCli(["start"], cwd);
    await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${port} \\(tls starttls`));

    const fingerprint = async () => {
      const client = await session(port);
      expect((await client.startTls({ servername: "mx.test" })).code).toBe(220);
      const peer = (client.socket as TLSSocket).getPeerX509Certificate();
      client.close();
      return peer?.fingerprint256;
    };
    const firstFingerprint = new X509Certificate(await readFile(first.certificate)).fingerprint256;
    expect(await fingerprint()).toBe(firstFingerprint);

    const second = await createTestCertificate(["mx2.test"], { dir: cwd });
    await writeFile(file, yaml({ port, domains: ["localhost", "example.org"], tls: second }));
    process.kill(cli.pid, "SIGHUP");
    await cli.waitForStderr(/SIGHUP: configuration reloaded/);
    expect(await fingerprint()).toBe(new X509Certificate(await readFile(second.certificate)).fingerprint256);

    // A certificate file that is gone: named, and the old certificate keeps serving.
    await writeFile(file, yaml({ port, domains: ["localhost"], tls: { ...second, key: "./missing.key" } }));
    process.kill(cli.pid, "SIGHUP");
    await cli.waitForStderr(/SIGHUP: postern\.yaml: listeners\.0\.key: [^\n]*missing\.key[^\n]*still serving/);
    expect(await fingerprint()).toBe(new X509Certificate(await readFile(second.certificate)).fingerprint256);

    process.kill(cli.pid, "SIGTERM");
    expect((await cli.exited()).code).toBe(0);
  });
});

describe("postern start on an uncaught error", () => {
  it("logs it, tells idle sessions 421, stops and exits 70", async () => {
    const cwd = await makeTempDir("crash");
    const port = await freePort();
    // A plugin with a bug outside any hook's promise: the error reaches the process.
    await writeFile(
      join(cwd, "buggy.mjs"),
      `export default () => ({ name: "buggy", hooks: { rcptTo(tx, rcpt) {
        if (rcpt.address.startsWith("crash@")) setTimeout(() => { throw new Error("buggy state"); }, 0);
      } } });\n`,
    );
    await writeFile(join(cwd, "postern.yaml"), yaml({ port, domains: ["localhost"], extra: "  - ./buggy.mjs\n" }));
    const cli = startCli(["start"], cwd);
    await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${port} `));

    const idle = await session(port);
    const trigger = await session(port);
    expect((await trigger.command("MAIL FROM:<a@client.test>")).code).toBe(250);
    await trigger.command("RCPT TO:<crash@localhost>");

    expect((await idle.read(15_000)).code).toBe(421);
    const exit = await cli.exited(20_000);
    expect(exit.code).toBe(70);
    expect(exit.stderr).toMatch(/postern: uncaught error: buggy state; stopping/);
    expect(exit.stdout).toMatch(/"level":60[^\n]*"msg":"uncaught error: stopping/);
  });
});
