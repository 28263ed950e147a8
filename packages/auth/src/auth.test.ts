// SMTP AUTH over real SMTP and real TLS on loopback: submission with STARTTLS and implicit TLS, an
// MX that never offers AUTH, failure limits, sender ownership, and password file changes.
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accept, createServer, type Plugin, type ServerConfigInput } from "@postern/core";
import {
  buildMessage,
  createTestCertificate,
  type MemoryQueue,
  memoryQueue,
  type RawSmtpClient,
  startTestServer,
  type TestCertificate,
  type TestServer,
} from "@postern/testing";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import auth, { type AuthOptions, authentication, hashPassword, updatePasswordFile } from "./index.ts";

let cert: TestCertificate;
let passwordFile: string;
let server: TestServer | undefined;
const clients: RawSmtpClient[] = [];

beforeAll(async () => {
  cert = await createTestCertificate(["mx.test", "localhost"]);
  passwordFile = join(await mkdtemp(join(tmpdir(), "postern-auth-")), "passwd");
  await updatePasswordFile(
    passwordFile,
    async (file) => {
      // A low cost keeps the suite quick; the format and the comparison are the same.
      file.set("alice@example.org", await hashPassword("correct horse", { cost: 10 }));
      file.set("bob", await hashPassword("battery staple", { cost: 10 }));
    },
    { create: true },
  );
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.stop();
  server = undefined;
});

/** Claims recipients only for authenticated sessions, like @postern/recipients' relay rule. */
const relayForUsers: Plugin = {
  name: "test:relay-for-users",
  hooks: { rcptTo: (transaction) => (transaction.session.user ? accept({ route: "relay" }) : undefined) },
};

const listeners = () =>
  [
    { name: "mx", port: 1, tls: "starttls", certificate: cert.certificate, key: cert.key },
    { name: "submission", port: 1, tls: "starttls", auth: "required", certificate: cert.certificate, key: cert.key },
    { name: "submissions", port: 1, tls: "implicit", auth: "required", certificate: cert.certificate, key: cert.key },
  ] satisfies ServerConfigInput["listeners"];

async function serve(options: Partial<AuthOptions> = {}): Promise<{ target: TestServer; queue: MemoryQueue }> {
  const queue = memoryQueue();
  server = await startTestServer({
    plugins: [auth({ passwordFile, ...options }), relayForUsers, queue.plugin],
    config: { listeners: listeners(), tlsReload: { onSighup: false, watchFiles: false } },
  });
  return { target: server, queue };
}

const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString("base64");

/** Connects to the submission listener, STARTTLS, EHLO. */
async function submission(target: TestServer): Promise<RawSmtpClient> {
  const client = await target.connect({ port: target.ports[1]! });
  clients.push(client);
  expect((await client.read()).code).toBe(220);
  await client.command("EHLO client.test");
  expect((await client.startTls()).code).toBe(220);
  expect((await client.command("EHLO client.test")).lines).toContain("AUTH PLAIN LOGIN");
  return client;
}

async function send(client: RawSmtpClient, from: string, raw: Buffer): Promise<{ code: number; enhanced?: string }> {
  const mail = await client.command(`MAIL FROM:<${from}>`);
  if (mail.code !== 250) return mail;
  expect((await client.command("RCPT TO:<friend@elsewhere.example>")).code).toBe(250);
  expect((await client.command("DATA")).code).toBe(354);
  client.write(Buffer.concat([raw, Buffer.from(".\r\n")]));
  return client.read();
}

describe("submission", () => {
  it("STARTTLS + AUTH PLAIN + a message; later hooks see the user; Received says ESMTPSA", async () => {
    const { target, queue } = await serve();
    const client = await submission(target);
    expect(await client.command("MAIL FROM:<alice@example.org>")).toMatchObject({ code: 530 });
    expect(await client.command(`AUTH PLAIN ${plain("Alice@Example.org", "correct horse")}`)).toMatchObject({
      code: 235,
    });
    const reply = await send(client, "alice@example.org", buildMessage({ from: "Alice <alice@example.org>" }));
    expect(reply.code).toBe(250);
    const stored = queue.messages[0]!;
    expect(stored.route).toBe("relay");
    expect(stored.transaction.session.user).toBe("Alice@Example.org");
    expect(stored.transaction.session.results.get(authentication)).toEqual({
      user: "alice@example.org",
      method: "PLAIN",
    });
    expect(stored.bytes.toString()).toMatch(/with ESMTPSA id/);
  });

  it("AUTH LOGIN", async () => {
    const { target } = await serve();
    const client = await submission(target);
    expect(await client.command("AUTH LOGIN")).toMatchObject({ code: 334, text: "VXNlcm5hbWU6" });
    expect((await client.command(Buffer.from("bob").toString("base64"))).code).toBe(334);
    expect((await client.command(Buffer.from("battery staple").toString("base64"))).code).toBe(235);
  });

  it("implicit TLS (465 style) with AUTH, through nodemailer", async () => {
    const { target, queue } = await serve();
    const result = await target.send({
      port: target.ports[2]!,
      secure: true,
      auth: { user: "alice@example.org", pass: "correct horse" },
      from: "alice@example.org",
      to: "friend@elsewhere.example",
      raw: buildMessage({ from: "alice@example.org" }),
    });
    expect(result.response).toMatch(/^250 /);
    expect(queue.messages[0]!.bytes.toString()).toMatch(/\(using TLSv1\.3 with cipher \w+\)\r\n.*with ESMTPSA id/s);
  });

  it("refuses AUTH before STARTTLS with 538 5.7.11 and does not offer it", async () => {
    const { target } = await serve();
    const client = await target.connect({ port: target.ports[1]! });
    clients.push(client);
    await client.read();
    const ehlo = await client.command("EHLO client.test");
    expect(ehlo.lines.some((line) => line.startsWith("AUTH"))).toBe(false);
    expect(await client.command(`AUTH PLAIN ${plain("alice@example.org", "correct horse")}`)).toMatchObject({
      code: 538,
      enhanced: "5.7.11",
    });
  });

  it("the MX listener never offers AUTH, not even over TLS", async () => {
    const { target } = await serve();
    const client = await target.connect();
    clients.push(client);
    await client.read();
    await client.command("EHLO client.test");
    await client.startTls();
    const ehlo = await client.command("EHLO client.test");
    expect(ehlo.lines).not.toContain("STARTTLS");
    expect(ehlo.lines.some((line) => line.startsWith("AUTH"))).toBe(false);
    const reply = await client.command(`AUTH PLAIN ${plain("alice@example.org", "correct horse")}`);
    expect(reply.code).toBeGreaterThanOrEqual(500);
    // Without a user nobody claims the recipient: no open relay.
    expect((await client.command("MAIL FROM:<alice@example.org>")).code).toBe(250);
    expect(await client.command("RCPT TO:<friend@elsewhere.example>")).toMatchObject({ code: 550, enhanced: "5.7.1" });
  });
});

describe("failed attempts", () => {
  it("535 5.7.8 for a wrong password or an unknown user; 421 after the session's limit; 454 once the client's limit is reached", async () => {
    const { target } = await serve({ failureLimit: { perClient: 4, perSession: 3, windowSeconds: 600 } });
    const first = await submission(target);
    expect(await first.command(`AUTH PLAIN ${plain("alice@example.org", "wrong")}`)).toMatchObject({
      code: 535,
      enhanced: "5.7.8",
    });
    expect(await first.command(`AUTH PLAIN ${plain("nobody@example.org", "wrong")}`)).toMatchObject({
      code: 535,
      enhanced: "5.7.8",
    });
    expect(await first.command(`AUTH PLAIN ${plain("bob", "wrong")}`)).toMatchObject({ code: 421, enhanced: "4.7.0" });
    await first.closed();

    const second = await submission(target);
    expect((await second.command(`AUTH PLAIN ${plain("bob", "still wrong")}`)).code).toBe(535);
    // Four failures from this client: even the right password is not checked now.
    expect(await second.command(`AUTH PLAIN ${plain("bob", "battery staple")}`)).toMatchObject({
      code: 454,
      enhanced: "4.7.0",
    });
  });
});

describe("sender ownership", () => {
  it("allows the user's own address (any case) and the null sender; refuses others with 553 5.7.1", async () => {
    const { target } = await serve();
    const client = await submission(target);
    await client.command(`AUTH PLAIN ${plain("alice@example.org", "correct horse")}`);
    expect((await client.command("MAIL FROM:<Alice@EXAMPLE.org>")).code).toBe(250);
    await client.command("RSET");
    expect((await client.command("MAIL FROM:<>")).code).toBe(250);
    await client.command("RSET");
    expect(await client.command("MAIL FROM:<ceo@example.org>")).toMatchObject({ code: 553, enhanced: "5.7.1" });
    expect(await client.command("MAIL FROM:<alice+tag@example.org>")).toMatchObject({ code: 553 });
  });

  it("checks the From header after DATA", async () => {
    const { target, queue } = await serve();
    const client = await submission(target);
    await client.command(`AUTH PLAIN ${plain("alice@example.org", "correct horse")}`);
    const forged = buildMessage({ from: '"The CEO" <ceo@example.org>' });
    expect(await send(client, "alice@example.org", forged)).toMatchObject({ code: 553, enhanced: "5.7.1" });
    const group = buildMessage({ from: "team: alice@example.org, ceo@example.org;" });
    expect(await send(client, "alice@example.org", group)).toMatchObject({ code: 553 });
    expect(queue.messages).toHaveLength(0);
  });

  it("uses the configured map, whole domains, subaddresses and the domain default", async () => {
    const { target } = await serve({
      senders: { BOB: ["bob@example.net", "@example.com"] },
      subaddressSeparator: "+",
      defaultSenders: "domain",
    });
    const bob = await submission(target);
    await bob.command(`AUTH PLAIN ${plain("bob", "battery staple")}`);
    for (const [address, code] of [
      ["bob@example.net", 250],
      ["bob+lists@example.net", 250],
      ["anyone@example.com", 250],
      ["anyone@xn--bcher-kva.example", 553],
      ["bob@example.org", 553],
    ] as const) {
      expect((await bob.command(`MAIL FROM:<${address}>`)).code, address).toBe(code);
      await bob.command("RSET");
    }
    const alice = await submission(target);
    await alice.command(`AUTH PLAIN ${plain("alice@example.org", "correct horse")}`);
    expect((await alice.command("MAIL FROM:<sales@example.org>")).code).toBe(250);
  });
});

describe("the password file", () => {
  it("picks up users added while the server runs, and keeps the old users if the file breaks", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-auth-live-"));
    const file = join(dir, "passwd");
    await updatePasswordFile(file, async (users) => users.set("dave", await hashPassword("one", { cost: 10 })), {
      create: true,
    });
    const { target } = await serve({ passwordFile: file, defaultSenders: "none" });
    await updatePasswordFile(file, async (users) => users.set("erin", await hashPassword("two", { cost: 10 })));
    const erin = await submission(target);
    expect((await erin.command(`AUTH PLAIN ${plain("erin", "two")}`)).code).toBe(235);

    await writeFile(file, "this is not a password file\n");
    const dave = await submission(target);
    expect((await dave.command(`AUTH PLAIN ${plain("dave", "one")}`)).code).toBe(235);
    expect(target.logs.some((line) => /cannot reload the password file/.test(line.msg))).toBe(true);
  });

  it("fails setup with a clear line when the file is missing or malformed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-auth-bad-"));
    const start = async (file: string) => {
      const instance = createServer({
        listeners: [{ port: 1 }],
        log: { level: "silent" },
        plugins: [auth({ passwordFile: file })],
      });
      instance.config.listeners[0]!.port = 0;
      const error = await instance.start().then(
        () => undefined,
        (cause: Error) => cause,
      );
      await instance.stop();
      return error?.message;
    };
    expect(await start(join(dir, "missing"))).toMatch(
      /^@postern\/auth failed to set up: cannot read the password file .*missing: ENOENT.*\(create it with `postern user add <name> --file <path>`\)$/,
    );
    await writeFile(join(dir, "bad"), "# users\nalice@example.org:plaintext-password\n");
    expect(await start(join(dir, "bad"))).toBe(
      `@postern/auth failed to set up: ${join(dir, "bad")}:2: expected a PHC hash such as "$scrypt$ln=15,r=8,p=1$<salt>$<hash>" (write it with \`postern user add\`)`,
    );
  });

  it("names a bad option in one line", () => {
    expect(() => auth({ passwordFile: "x", senders: { bob: ["not an address"] } })).toThrow(
      /^@postern\/auth\.senders\.bob\.0: expected an address/,
    );
    expect(() => auth({} as AuthOptions)).toThrow(
      /^@postern\/auth\.passwordFile: expected the path of the password file/,
    );
  });
});
