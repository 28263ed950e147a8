// Listener TLS over real TLS on loopback: SNI, reload without dropping sessions, clear startup
// errors, the protocol floor, and AUTH only after TLS.
import { X509Certificate } from "node:crypto";
import { copyFile, mkdtemp, readFile, rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ConnectionOptions,
  createServer as createTlsServer,
  type TLSSocket,
  connect as tlsConnect,
} from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import {
  buildMessage,
  claimRecipients,
  connectSmtp,
  createTestCertificate,
  memoryQueue,
  type RawSmtpClient,
  startTestServer,
  type TestCertificate,
  type TestServer,
} from "../../testing/src/index.ts";
import { createServer, type Plugin, type ServerConfigInput, type Session } from "./index.ts";

let server: TestServer | undefined;
const clients: RawSmtpClient[] = [];
const sockets: TLSSocket[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const socket of sockets.splice(0)) socket.destroy();
  await server?.stop();
  server = undefined;
});

type ListenerInput = NonNullable<ServerConfigInput["listeners"]>[number];

async function serve(listeners: ListenerInput[], extra: Partial<ServerConfigInput> = {}, plugins: Plugin[] = []) {
  server = await startTestServer({
    plugins: [...plugins, claimRecipients(), memoryQueue().plugin],
    config: { listeners, tlsReload: { onSighup: false, watchFiles: false }, ...extra },
  });
  return server;
}

function fingerprintOf(socket: TLSSocket): string {
  return socket.getPeerX509Certificate()!.fingerprint256;
}

async function fileFingerprint(cert: TestCertificate): Promise<string> {
  return new X509Certificate(await readFile(cert.certificate)).fingerprint256;
}

/** STARTTLS on a new connection; returns the client (now over TLS). */
async function startTls(port: number, options: ConnectionOptions = {}): Promise<RawSmtpClient> {
  const client = await connectSmtp(port);
  clients.push(client);
  expect((await client.read()).code).toBe(220);
  expect((await client.command("EHLO client.test")).code).toBe(250);
  expect((await client.startTls(options)).code).toBe(220);
  return client;
}

/** A bare TLS handshake on an implicit-TLS port: resolves with the socket or the error. */
function handshake(port: number, options: ConnectionOptions): Promise<TLSSocket | Error> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ port, host: "127.0.0.1", rejectUnauthorized: false, ...options });
    socket.once("secureConnect", () => {
      sockets.push(socket);
      resolve(socket);
    });
    socket.once("error", (error) => resolve(error));
  });
}

describe("certificates chosen by SNI", () => {
  it("serves the certificate covering the name asked for, the default otherwise", async () => {
    const main = await createTestCertificate(["mx.test", "localhost"]);
    const other = await createTestCertificate(["mail.example.org"]);
    const wildcard = await createTestCertificate(["*.example.net"]);
    const target = await serve([
      {
        port: 1,
        tls: "starttls",
        certificate: main.certificate,
        key: main.key,
        certificates: [other, wildcard].map(({ certificate, key }) => ({ certificate, key })),
      },
      {
        port: 1,
        tls: "implicit",
        certificate: main.certificate,
        key: main.key,
        certificates: [{ certificate: other.certificate, key: other.key }],
      },
    ]);
    const [starttlsPort, implicitPort] = target.ports as [number, number];

    const asked = async (servername: string | undefined) =>
      fingerprintOf((await startTls(starttlsPort, servername ? { servername } : {})).socket as TLSSocket);
    expect(await asked("mail.example.org")).toBe(await fileFingerprint(other));
    expect(await asked("MAIL.Example.ORG")).toBe(await fileFingerprint(other));
    expect(await asked("smtp.example.net")).toBe(await fileFingerprint(wildcard));
    // A wildcard covers one label only.
    expect(await asked("a.b.example.net")).toBe(await fileFingerprint(main));
    expect(await asked("unknown.test")).toBe(await fileFingerprint(main));
    expect(await asked(undefined)).toBe(await fileFingerprint(main));

    const implicit = await handshake(implicitPort, { servername: "mail.example.org" });
    expect(fingerprintOf(implicit as TLSSocket)).toBe(await fileFingerprint(other));
  });

  it("records protocol, cipher, SNI and a client certificate in session.tls", async () => {
    const cert = await createTestCertificate(["mx.test"]);
    const clientCert = await createTestCertificate(["client.example"]);
    let seen: Session["tls"];
    await serve(
      [{ port: 1, tls: "starttls", certificate: cert.certificate, key: cert.key, requestClientCertificate: true }],
      {},
      [
        {
          name: "watch",
          hooks: {
            secure: (session) => {
              seen = session.tls;
            },
          },
        },
      ],
    );
    await startTls(server!.port, {
      servername: "mx.test",
      cert: await readFile(clientCert.certificate),
      key: await readFile(clientCert.key),
    });
    await clients[0]!.command("EHLO client.test");
    expect(seen).toMatchObject({ protocol: "TLSv1.3", servername: "mx.test" });
    expect(seen!.cipher).toMatch(/^TLS_/);
    expect(seen!.clientCertificate).toMatchObject({
      subject: "CN=client.example",
      fingerprint256: await fileFingerprint(clientCert),
      authorized: false,
    });
  });
});

describe("reloading certificates", () => {
  it("reloadTls() swaps the certificate for new connections; an open TLS session stays up", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-reload-"));
    const first = await createTestCertificate(["mx.test"], { dir });
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [claimRecipients(), queue.plugin],
      config: {
        listeners: [{ port: 1, tls: "starttls", certificate: first.certificate, key: first.key }],
        tlsReload: { onSighup: false, watchFiles: false },
      },
    });
    const open = await startTls(server.port);
    const before = fingerprintOf(open.socket as TLSSocket);
    expect(before).toBe(await fileFingerprint(first));

    const second = await createTestCertificate(["mx.test"], { dir: await mkdtemp(join(tmpdir(), "postern-reload-")) });
    await copyFile(second.certificate, first.certificate);
    await copyFile(second.key, first.key);
    await server.server.reloadTls();

    const fresh = await startTls(server.port);
    expect(fingerprintOf(fresh.socket as TLSSocket)).toBe(await fileFingerprint(second));
    // The session opened before the reload is still up and carries a whole transaction.
    expect((await open.command("EHLO client.test")).code).toBe(250);
    expect((await open.command("MAIL FROM:<a@example.org>")).code).toBe(250);
    expect((await open.command("RCPT TO:<b@localhost>")).code).toBe(250);
    expect((await open.command("DATA")).code).toBe(354);
    open.write(buildMessage().toString("latin1").concat(".\r\n"));
    expect((await open.read()).code).toBe(250);
    expect(queue.messages).toHaveLength(1);
  });

  it("reloads when the files change (atomic rename, as a renewal does)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-watch-"));
    const first = await createTestCertificate(["mx.test"], { dir });
    const target = await serve([{ port: 1, tls: "implicit", certificate: first.certificate, key: first.key }], {
      tlsReload: { onSighup: false, watchFiles: true, delayMs: 50 },
    });
    const second = await createTestCertificate(["mx.test"], { dir: await mkdtemp(join(tmpdir(), "postern-watch-")) });
    await copyFile(second.key, `${first.key}.new`);
    await rename(`${first.key}.new`, first.key);
    await copyFile(second.certificate, `${first.certificate}.new`);
    await rename(`${first.certificate}.new`, first.certificate);

    const wanted = await fileFingerprint(second);
    let served = "";
    for (let attempt = 0; attempt < 100 && served !== wanted; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const socket = await handshake(target.port, {});
      served = fingerprintOf(socket as TLSSocket);
    }
    expect(served).toBe(wanted);
    expect(target.logs.some((line) => line.msg === "TLS certificates reloaded")).toBe(true);
  });

  it("keeps serving the old certificate when the new files are bad", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-bad-reload-"));
    const first = await createTestCertificate(["mx.test"], { dir });
    const target = await serve([{ port: 1, tls: "implicit", certificate: first.certificate, key: first.key }]);
    const other = await createTestCertificate(["mx.test"]);
    await copyFile(other.key, first.key); // the key no longer matches the certificate
    await expect(target.server.reloadTls()).rejects.toThrow(/does not match the certificate/);
    const socket = await handshake(target.port, {});
    expect(fingerprintOf(socket as TLSSocket)).toBe(await fileFingerprint(first));
    expect(target.logs.some((line) => /TLS reload failed/.test(line.msg))).toBe(true);
  });
});

describe("startup errors", () => {
  async function startWith(listener: Partial<ListenerInput>): Promise<Error> {
    const instance = createServer({
      listeners: [{ port: 1, address: "127.0.0.1", tls: "starttls", ...listener } as ListenerInput],
      log: { level: "silent" },
      tlsReload: { onSighup: false, watchFiles: false },
    });
    for (const entry of instance.config.listeners) entry.port = 0;
    try {
      await instance.start();
    } catch (error) {
      await instance.stop();
      return error as Error;
    }
    await instance.stop();
    throw new Error("the server started");
  }

  it("names an unreadable file", async () => {
    const cert = await createTestCertificate();
    const error = await startWith({ name: "submission", certificate: cert.certificate, key: "/nonexistent/key.pem" });
    expect(error.message).toBe(
      "listener submission: cannot read the TLS key file /nonexistent/key.pem: ENOENT: no such file or directory, open '/nonexistent/key.pem'",
    );
    expect(error).toMatchObject({ code: "POSTERN_TLS_FILES" });
  });

  it("names a key that belongs to another certificate", async () => {
    const cert = await createTestCertificate();
    const other = await createTestCertificate();
    const error = await startWith({ name: "mx", certificate: cert.certificate, key: other.key });
    expect(error.message).toBe(
      `listener mx: the TLS key ${other.key} does not match the certificate ${cert.certificate} (is it the key of another certificate?)`,
    );
  });

  it("names a file that is not PEM, and an SNI certificate's problem too", async () => {
    const cert = await createTestCertificate();
    const dir = await mkdtemp(join(tmpdir(), "postern-notpem-"));
    await writeFile(join(dir, "junk.pem"), "not a certificate\n");
    const junk = await startWith({ name: "mx", certificate: join(dir, "junk.pem"), key: cert.key });
    expect(junk.message).toMatch(/^listener mx: .*junk\.pem is not a PEM certificate \(/);
    const extra = await startWith({
      name: "mx",
      certificate: cert.certificate,
      key: cert.key,
      certificates: [{ certificate: cert.certificate, key: join(dir, "missing.key") }],
    });
    expect(extra.message).toMatch(/^listener mx: cannot read the TLS key file .*missing\.key/);
  });

  it("names a cipher list OpenSSL cannot use", async () => {
    const cert = await createTestCertificate();
    const error = await startWith({
      name: "mx",
      certificate: cert.certificate,
      key: cert.key,
      ciphers: "NO-SUCH-CIPHER",
    });
    expect(error.message).toMatch(/^listener mx: ciphers "NO-SUCH-CIPHER" selects no cipher OpenSSL knows/);
  });

  it("refuses AUTH on a listener without TLS unless allowInsecureAuth says so", () => {
    expect(() => createServer({ listeners: [{ port: 2525, auth: "required" }] })).toThrow(
      /^listeners\.0\.auth: AUTH without TLS sends passwords in clear/,
    );
  });
});

describe("protocol floor", () => {
  const oldClient: ConnectionOptions = {
    minVersion: "TLSv1",
    maxVersion: "TLSv1.1",
    // OpenSSL 3 refuses TLS 1.0/1.1 at its default security level even as a client.
    ciphers: "DEFAULT@SECLEVEL=0",
  };

  it("refuses TLS 1.1 clients (implicit TLS and STARTTLS) and accepts TLS 1.2", async () => {
    const cert = await createTestCertificate();
    const target = await serve([
      { port: 1, tls: "implicit", certificate: cert.certificate, key: cert.key },
      { port: 1, tls: "starttls", certificate: cert.certificate, key: cert.key },
    ]);
    const [implicitPort, starttlsPort] = target.ports as [number, number];

    // The client can speak TLS 1.1: a server that allows it completes the handshake.
    const permissive = createTlsServer({
      key: await readFile(cert.key),
      cert: await readFile(cert.certificate),
      minVersion: "TLSv1",
      ciphers: "DEFAULT@SECLEVEL=0",
    });
    await new Promise<void>((resolve) => permissive.listen(0, "127.0.0.1", resolve));
    const control = await handshake((permissive.address() as { port: number }).port, oldClient);
    expect((control as TLSSocket).getProtocol()).toBe("TLSv1.1");
    (control as TLSSocket).destroy();
    permissive.close();

    const refused = await handshake(implicitPort, oldClient);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as NodeJS.ErrnoException).code).toBe("ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION");

    const client = await connectSmtp(starttlsPort);
    clients.push(client);
    await client.read();
    await client.command("EHLO client.test");
    await expect(client.startTls(oldClient)).rejects.toMatchObject({ code: "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION" });

    const modern = await handshake(implicitPort, { maxVersion: "TLSv1.2" });
    expect((modern as TLSSocket).getProtocol()).toBe("TLSv1.2");
    expect((modern as TLSSocket).getCipher().name).toMatch(/GCM|CHACHA20/);
    // TLS 1.2 with only CBC ciphers is refused too.
    const cbc = await handshake(implicitPort, { maxVersion: "TLSv1.2", ciphers: "ECDHE-ECDSA-AES128-SHA256" });
    expect(cbc).toBeInstanceOf(Error);
  });

  it("minTlsVersion TLSv1.3 refuses TLS 1.2", async () => {
    const cert = await createTestCertificate();
    const target = await serve([
      { port: 1, tls: "implicit", certificate: cert.certificate, key: cert.key, minTlsVersion: "TLSv1.3" },
    ]);
    const refused = await handshake(target.port, { maxVersion: "TLSv1.2" });
    expect(refused).toBeInstanceOf(Error);
    expect(((await handshake(target.port, {})) as TLSSocket).getProtocol()).toBe("TLSv1.3");
  });
});

describe("AUTH only after TLS", () => {
  it("hides AUTH before STARTTLS, answers 538 5.7.11 if tried, offers it after", async () => {
    const cert = await createTestCertificate();
    const target = await serve([
      { port: 1, tls: "starttls", auth: "required", certificate: cert.certificate, key: cert.key },
    ]);
    const client = await connectSmtp(target.port);
    clients.push(client);
    await client.read();
    const plain = await client.command("EHLO client.test");
    expect(plain.lines).toContain("STARTTLS");
    expect(plain.lines.some((line) => line.startsWith("AUTH"))).toBe(false);
    expect(await client.command("AUTH PLAIN AGFsaWNlAHNlY3JldA==")).toMatchObject({ code: 538, enhanced: "5.7.11" });
    expect(await client.command("MAIL FROM:<a@example.org>")).toMatchObject({ code: 530, enhanced: "5.7.0" });
    await client.startTls();
    const secure = await client.command("EHLO client.test");
    expect(secure.lines).toContain("AUTH PLAIN LOGIN");
    expect(secure.lines).toContain("REQUIRETLS");
  });
});
