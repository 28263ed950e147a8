// SIGHUP against a real `postern start` process: the whole configuration reloads (plugins and
// listeners, with and without TLS), a bad one is named in one line and the old one keeps serving,
// and sessions in flight finish on the old configuration (their mail goes to the old store).
import { X509Certificate } from "node:crypto";
import { readdir, readFile, writeFile } from "node:fs/promises";
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
  /** A second listener's port. */
  alsoPort?: number;
  /** The Maildir root (./mail). */
  mail?: string;
}) => `hostname: mx.test
listeners:
  - port: ${options.port}${
    options.tls
      ? `
    tls: starttls
    certificate: ${options.tls.certificate}
    key: ${options.tls.key}`
      : ""
  }${options.alsoPort ? `\n  - port: ${options.alsoPort}` : ""}
plugins:
${options.extra ?? ""}  - package: "@postern/recipients"
    options: { domains: [${options.domains.join(", ")}] }
  - package: "@postern/store-maildir"
    options: { root: ${options.mail ?? "./mail"} }
`;

/** Files under a Maildir root whose text contains `needle`. */
async function filesWith(root: string, needle: string): Promise<string[]> {
  const names = await readdir(root, { recursive: true }).catch(() => [] as string[]);
  const found: string[] = [];
  for (const name of names) {
    const text = await readFile(join(root, name), "utf8").catch(() => "");
    if (text.includes(needle)) found.push(name);
  }
  return found;
}

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
    const [port, secondPort] = [await freePort(), await freePort()];
    const file = join(cwd, "postern.yaml");
    await writeFile(file, yaml({ port, domains: ["localhost"] }));
    const cli = startCli(["start"], cwd);
    await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${port} `));

    const before = await session(port);
    expect(await rcpt(before, "sales@example.org")).toBe(550);
    // A transaction in flight across the reload: its DATA half sent before the SIGHUP.
    const inFlight = await session(port);
    expect((await inFlight.command("MAIL FROM:<sender@client.test>")).code).toBe(250);
    expect((await inFlight.command("RCPT TO:<postmaster@localhost>")).code).toBe(250);
    expect((await inFlight.command("DATA")).code).toBe(354);
    const [head, tail] = buildMessage({ to: "postmaster@localhost", subject: "begun before the reload" })
      .toString("latin1")
      .split("\r\n\r\n");
    inFlight.write(`${head}\r\n\r\n`);

    // The new configuration: another domain, another Maildir root, a second listener.
    await writeFile(
      file,
      yaml({ port, domains: ["localhost", "example.org"], mail: "./mail-new", alsoPort: secondPort }),
    );
    process.kill(cli.pid, "SIGHUP");
    await cli.waitForStderr(/SIGHUP: configuration reloaded from postern\.yaml \(2 plugins/);

    // New sessions use the new configuration; the session opened before keeps the old one.
    const after = await session(port);
    expect(await rcpt(after, "sales@example.org")).toBe(250);
    expect(await rcpt(before, "sales@example.org")).toBe(550);
    expect(await rcpt(await session(secondPort), "sales@example.org")).toBe(250);
    const sent = await sendMail({
      port,
      to: "postmaster@localhost",
      raw: buildMessage({ to: "postmaster@localhost", subject: "sent after the reload" }),
    });
    expect(sent.response).toMatch(/^250 /);
    // The transaction in flight finishes on the old plugins: stored under the old root.
    inFlight.write(tail!);
    expect((await inFlight.command("\r\n.")).code).toBe(250);
    expect(await filesWith(join(cwd, "mail"), "begun before the reload")).toHaveLength(1);
    expect(await filesWith(join(cwd, "mail-new"), "begun before the reload")).toHaveLength(0);
    expect(await filesWith(join(cwd, "mail-new"), "sent after the reload")).toHaveLength(1);
    expect(await filesWith(join(cwd, "mail"), "sent after the reload")).toHaveLength(0);

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
