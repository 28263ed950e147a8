// Other SMTP clients than nodemailer deliver to `postern start`: Python's smtplib and swaks (a
// Debian package, see tooling/ci/debian-packages.txt).
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import {
  freePort,
  killRunningClis,
  makeTempDir,
  type RunningCli,
  removeTempDirs,
  startCli,
} from "./test-support/cli-process.ts";

const run = promisify(execFile);

afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

async function startDefault(): Promise<{ cli: RunningCli; port: number; cwd: string }> {
  const cwd = await makeTempDir("interop");
  const port = await freePort();
  const cli = startCli(["start", "--port", String(port), "--domain", "example.org"], cwd);
  await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${port} `));
  return { cli, port, cwd };
}

async function storedMessages(cwd: string, mailbox: string): Promise<string[]> {
  const dir = join(cwd, "data/maildir", mailbox, "new");
  return Promise.all((await readdir(dir)).map((name) => readFile(join(dir, name), "utf8")));
}

async function which(program: string): Promise<string | undefined> {
  try {
    return (await run("sh", ["-c", `command -v ${program}`])).stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

describe("interop with other SMTP clients", () => {
  it("Python's smtplib delivers a message", async () => {
    const { port, cwd } = await startDefault();
    const python = await which("python3");
    if (!python)
      throw new Error("python3 is missing; install the Debian packages with: bash tooling/ci/debian-tools.sh");
    const script = `
import smtplib, sys
from email.message import EmailMessage
message = EmailMessage()
message["From"] = "sender@example.com"
message["To"] = "alice@example.org"
message["Subject"] = "sent by smtplib"
message.set_content("Hello from Python.")
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="python.test", timeout=20) as smtp:
    smtp.send_message(message)
print("sent")
`;
    const { stdout } = await run(python, ["-c", script, String(port)], { timeout: 30_000 });
    expect(stdout.trim()).toBe("sent");
    const [stored] = await storedMessages(cwd, "example.org/alice");
    expect(stored).toMatch(/^Received: from python\.test /);
    expect(stored).toContain("Subject: sent by smtplib");
    expect(stored).toContain("Hello from Python.");
  });

  it("swaks delivers a message", async () => {
    const { port, cwd } = await startDefault();
    const swaks = await which("swaks");
    if (!swaks) {
      throw new Error("swaks is not installed; install the interop tools with: bash tooling/ci/debian-tools.sh");
    }
    const { stdout } = await run(
      swaks,
      [
        "--server",
        "127.0.0.1",
        "--port",
        String(port),
        "--helo",
        "swaks.test",
        "--from",
        "sender@example.com",
        "--to",
        "postmaster@localhost",
        "--header",
        "Subject: sent by swaks",
        "--body",
        "Hello from swaks.",
        "--timeout",
        "20",
      ],
      { timeout: 30_000 },
    );
    expect(stdout).toMatch(/<- {2}250 2\.0\.0 Ok: queued as /);
    const [stored] = await storedMessages(cwd, "localhost/postmaster");
    expect(stored).toMatch(/^Received: from swaks\.test /);
    expect(stored).toContain("Subject: sent by swaks");
    expect(stored).toContain("Hello from swaks.");
  });
});
