// Other SMTP clients against a running `postern start` (a child process, the way an operator runs
// it) with the example deployment: 25-style MX (STARTTLS, no AUTH), 587-style submission (STARTTLS,
// AUTH required) and 465-style implicit TLS. The users are written with `postern user add`.
// swaks (+ libnet-ssleay-perl) and python3 are Debian packages: bash tooling/ci/debian-tools.sh.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connectSmtp, createTestCertificate, type RawSmtpClient, type TestCertificate } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const cliPath = fileURLToPath(new URL("../../../apps/postern/src/cli.ts", import.meta.url));

interface Deployment {
  dir: string;
  cert: TestCertificate;
  ports: { mx: number; submission: number; submissions: number };
  child: ChildProcess;
  stderr: () => string;
}

let deployment: Deployment;
const clients: RawSmtpClient[] = [];

async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

async function which(program: string): Promise<string> {
  const found = await run("sh", ["-c", `command -v ${program}`]).then(
    ({ stdout }) => stdout.trim(),
    () => "",
  );
  if (!found) throw new Error(`${program} is missing; install the interop tools with: bash tooling/ci/debian-tools.sh`);
  return found;
}

/** Runs `postern <args>` to completion with `input` on stdin. */
async function postern(args: string[], cwd: string, input = ""): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ["--conditions=dev-source", cliPath, ...args], {
    cwd,
    env: { ...process.env, NODE_OPTIONS: "" },
    stdio: ["pipe", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  child.stdin!.end(input);
  const [code] = await once(child, "close");
  return { code: code as number | null, stderr };
}

// The example deployment of the README, on free loopback ports.
const captureModule = `
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
export default function capture({ dir }) {
  return {
    name: "test:capture",
    hooks: {
      async queue(transaction, message) {
        const chunks = [];
        for await (const chunk of message.stream()) chunks.push(chunk);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, transaction.id + ".eml"), Buffer.concat(chunks));
        return { kind: "accept" };
      },
    },
  };
}
`;

function configYaml(cert: TestCertificate, ports: Deployment["ports"]): string {
  const tls = `certificate: ${cert.certificate}, key: ${cert.key}`;
  return `hostname: mx.test
listeners:
  - { name: mx, address: 127.0.0.1, port: ${ports.mx}, tls: starttls, ${tls} }
  - { name: submission, address: 127.0.0.1, port: ${ports.submission}, tls: starttls, auth: required, ${tls} }
  - { name: submissions, address: 127.0.0.1, port: ${ports.submissions}, tls: implicit, auth: required, ${tls} }
tlsReload: { watchFiles: false }
plugins:
  - package: "@postern/tls-policy"
    options: { requireTls: [submission, submissions] }
  - package: "@postern/auth"
    options: { passwordFile: ./users }
  - package: "@postern/recipients"
    options: { domains: [example.org] }
  - package: ./capture.mjs
    options: { dir: ./stored }
`;
}

beforeAll(async () => {
  const dir = await mkdtemp(join(tmpdir(), "postern-auth-interop-"));
  const cert = await createTestCertificate(["mx.test", "localhost", "127.0.0.1"]);
  const ports = { mx: await freePort(), submission: await freePort(), submissions: await freePort() };
  // The command the README tells operators to use; cost 10 keeps the suite quick.
  const added = await postern(
    ["user", "add", "alice@example.org", "-f", "users", "--cost", "10"],
    dir,
    "s3cret pass\n",
  );
  expect(added).toMatchObject({ code: 0 });
  await writeFile(join(dir, "capture.mjs"), captureModule);
  await writeFile(join(dir, "postern.yaml"), configYaml(cert, ports));

  const child = spawn(process.execPath, ["--conditions=dev-source", cliPath, "start", "-c", "postern.yaml"], {
    cwd: dir,
    env: { ...process.env, NODE_OPTIONS: "" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  deployment = { dir, cert, ports, child, stderr: () => stderr };
  const deadline = Date.now() + 30_000;
  while (!stderr.includes(`listening on 127.0.0.1:${ports.submissions} `)) {
    if (child.exitCode !== null) throw new Error(`postern start exited:\n${stderr}`);
    if (Date.now() > deadline) throw new Error(`postern start did not listen in time:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}, 60_000);

afterAll(async () => {
  for (const client of clients.splice(0)) client.close();
  const child = deployment?.child;
  if (child?.pid && child.exitCode === null) {
    process.kill(child.pid, "SIGKILL");
    await once(child, "exit");
  }
  if (deployment) await rm(deployment.dir, { recursive: true, force: true });
});

async function stored(): Promise<string[]> {
  const dir = join(deployment.dir, "stored");
  const names = await readdir(dir).catch(() => [] as string[]);
  return Promise.all(names.sort().map((name) => readFile(join(dir, name), "utf8")));
}

async function storedWith(marker: string): Promise<string> {
  const found = (await stored()).find((message) => message.includes(marker));
  if (!found) throw new Error(`no stored message contains ${marker}`);
  return found;
}

describe("interop with other clients", () => {
  it("swaks: STARTTLS + AUTH PLAIN + a pipelined message on the submission port", async () => {
    const swaks = await which("swaks");
    const { stdout } = await run(
      swaks,
      [
        ...["--server", "127.0.0.1", "--port", String(deployment.ports.submission)],
        ...["--tls", "--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "s3cret pass"],
        ...["--pipeline", "--helo", "swaks.test"],
        ...["--from", "alice@example.org", "--to", "bob@example.org", "--h-From", "Alice <alice@example.org>"],
        ...["--header", "Subject: swaks-starttls"],
      ],
      { timeout: 60_000 },
    );
    const [plaintext, encrypted = ""] = stdout.split("=== TLS started");
    expect(plaintext).toMatch(/<- +220 .*Ready to start TLS/);
    expect(plaintext).not.toMatch(/AUTH/);
    expect(encrypted).toMatch(/<~ +250-AUTH PLAIN LOGIN/);
    expect(encrypted).toMatch(/<~ +235 /);
    // Pipelined: MAIL, RCPT and DATA went out before the first of their replies came back.
    expect(encrypted).toMatch(/~> MAIL FROM:<alice@example\.org>\n ~> RCPT TO:<bob@example\.org>\n ~> DATA\n<~ +250 /);
    expect(stdout).toMatch(/<~ +250 2\.0\.0 Ok: queued as/);
    const message = await storedWith("Subject: swaks-starttls");
    expect(message).toMatch(
      /^Received: from swaks\.test .*\r\n\t\(using TLSv1\.[23] with cipher \S+\)\r\n\tby mx\.test \(Postern\) with ESMTPSA id/,
    );
  });

  it("swaks: implicit TLS (465 style) with AUTH PLAIN", async () => {
    const swaks = await which("swaks");
    const { stdout } = await run(
      swaks,
      [
        ...["--server", "127.0.0.1", "--port", String(deployment.ports.submissions), "--tls-on-connect"],
        ...["--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "s3cret pass", "--pipeline"],
        ...["--from", "alice@example.org", "--to", "bob@example.org", "--h-From", "alice@example.org"],
        ...["--header", "Subject: swaks-implicit"],
      ],
      { timeout: 60_000 },
    );
    expect(stdout).toMatch(/~> MAIL FROM:<alice@example\.org>\n ~> RCPT TO:<bob@example\.org>\n ~> DATA\n/);
    expect(stdout).toMatch(/<~ +250 2\.0\.0 Ok: queued as/);
    expect(await storedWith("Subject: swaks-implicit")).toMatch(/with ESMTPSA id/);
  });

  it("swaks is refused AUTH on the MX port, and a wrong password on submission", async () => {
    const swaks = await which("swaks");
    const mx = await run(
      swaks,
      [
        ...["--server", "127.0.0.1", "--port", String(deployment.ports.mx), "--tls"],
        ...["--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "s3cret pass"],
        ...["--from", "alice@example.org", "--to", "bob@example.org"],
      ],
      { timeout: 60_000 },
    ).then(
      () => "",
      (error: { stdout: string; stderr: string }) => error.stdout + error.stderr,
    );
    expect(mx).toMatch(/Host did not advertise authentication/);
    const wrong = await run(
      swaks,
      [
        ...["--server", "127.0.0.1", "--port", String(deployment.ports.submission), "--tls"],
        ...["--auth", "PLAIN", "--auth-user", "alice@example.org", "--auth-password", "not it"],
        ...["--from", "alice@example.org", "--to", "bob@example.org"],
      ],
      { timeout: 60_000 },
    ).then(
      () => "",
      (error: { stdout: string }) => error.stdout,
    );
    expect(wrong).toMatch(/<~\*? +535 5\.7\.8 /);
  });

  it("Python smtplib: STARTTLS (certificate verified) + AUTH PLAIN + a pipelined message", async () => {
    const python = await which("python3");
    const script = `
import smtplib, ssl, sys
port, cafile = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=cafile)
message = (b"From: alice@example.org\\r\\nTo: bob@example.org\\r\\nSubject: smtplib-pipelined\\r\\n\\r\\n"
           b"Hello from Python.\\r\\n")
with smtplib.SMTP("127.0.0.1", port, local_hostname="python.test", timeout=30) as smtp:
    smtp.ehlo()
    assert not any(k.startswith("auth") for k in smtp.esmtp_features), smtp.esmtp_features
    smtp.starttls(context=context)
    smtp.ehlo()
    smtp.login("alice@example.org", "s3cret pass")
    assert "pipelining" in smtp.esmtp_features
    # MAIL, RCPT and DATA in one write (RFC 2920), then the three replies.
    smtp.send(b"MAIL FROM:<alice@example.org>\\r\\nRCPT TO:<bob@example.org>\\r\\nDATA\\r\\n")
    replies = [smtp.getreply()[0] for _ in range(3)]
    assert replies == [250, 250, 354], replies
    smtp.send(message + b".\\r\\n")
    code, text = smtp.getreply()
    assert code == 250, (code, text)
    print(smtp.sock.version(), text.decode())
`;
    const { stdout } = await run(
      python,
      ["-c", script, String(deployment.ports.submission), deployment.cert.certificate],
      { timeout: 60_000 },
    );
    expect(stdout).toMatch(/^TLSv1\.3 2\.0\.0 Ok: queued as [0-9A-Z]+$/m);
    expect(await storedWith("Subject: smtplib-pipelined")).toMatch(/^Received: from python\.test .*with ESMTPSA id/s);
  });
});

describe("certificate reload on SIGHUP", () => {
  it("new connections get the new certificate; a TLS session opened before stays up", async () => {
    const fingerprint = (socket: TLSSocket) => socket.getPeerX509Certificate()!.fingerprint256;
    const handshake = () =>
      new Promise<TLSSocket>((resolve, reject) => {
        const socket = tlsConnect({ port: deployment.ports.submissions, host: "127.0.0.1", rejectUnauthorized: false });
        socket.once("secureConnect", () => resolve(socket));
        socket.once("error", reject);
      });

    const open = await connectSmtp(deployment.ports.submission);
    clients.push(open);
    await open.read();
    await open.command("EHLO client.test");
    await open.startTls();
    const before = fingerprint(open.socket as TLSSocket);

    const renewed = await createTestCertificate(["mx.test", "localhost", "127.0.0.1"]);
    await copyFile(renewed.key, deployment.cert.key);
    await copyFile(renewed.certificate, deployment.cert.certificate);
    const wanted = new X509Certificate(await readFile(renewed.certificate)).fingerprint256;
    expect(wanted).not.toBe(before);
    process.kill(deployment.child.pid!, "SIGHUP");

    let served = "";
    for (let attempt = 0; attempt < 100 && served !== wanted; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const socket = await handshake();
      served = fingerprint(socket);
      socket.destroy();
    }
    expect(served).toBe(wanted);
    expect(deployment.child.exitCode).toBeNull();
    // The session from before the reload carries on.
    expect((await open.command("EHLO client.test")).code).toBe(250);
    expect((await open.command("NOOP")).code).toBe(250);
  });
});
