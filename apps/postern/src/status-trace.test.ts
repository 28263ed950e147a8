// `postern status` and `postern trace` against a real `postern start` with @postern/admin (and
// the per-transaction log line), after real SMTP traffic.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildMessage, sendMail } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import {
  freePort,
  killRunningClis,
  makeTempDir,
  removeTempDirs,
  runCli,
  startCli,
} from "./test-support/cli-process.ts";

afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

describe("postern status and postern trace", () => {
  it("read the running server's admin API", async () => {
    const cwd = await makeTempDir("status");
    const [smtpPort, adminPort] = [await freePort(), await freePort()];
    await writeFile(join(cwd, "admin.token"), "a-token-for-the-status-command\n");
    await writeFile(
      join(cwd, "postern.yaml"),
      `hostname: mx.test
listeners:
  - port: ${smtpPort}
plugins:
  - package: "@postern/admin"
    options: { listen: { port: ${adminPort} }, tokenFile: ./admin.token }
  - package: "@postern/transaction-log"
  - package: "@postern/recipients"
    options: { domains: [localhost] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`,
    );
    const cli = startCli(["start"], cwd);
    await cli.waitForStderr(new RegExp(`listening on 127\\.0\\.0\\.1:${smtpPort} `));
    const sent = await sendMail({
      port: smtpPort,
      to: "postmaster@localhost",
      raw: buildMessage({ subject: "trace me" }),
    });
    const queueId = /queued as (\S+)/.exec(sent.response)![1]!;
    await expect(sendMail({ port: smtpPort, to: "nobody@elsewhere.test", raw: buildMessage() })).rejects.toMatchObject({
      responseCode: 550,
    });

    const status = await runCli(["status"], cwd);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/^node +mx\.test \(mx\.test\), pid \d+/m);
    const coreVersion = (
      JSON.parse(await readFile(join(import.meta.dirname, "../../../packages/core/package.json"), "utf8")) as {
        version: string;
      }
    ).version;
    expect(status.stdout).toMatch(
      new RegExp(
        `^version +@postern/core ${coreVersion.replaceAll(".", "\\.")}, @postern/admin \\d+\\.\\d+\\.\\d+\\S*, Node\\.js v\\d+`,
        "m",
      ),
    );
    expect(status.stdout).toMatch(/^up +\d+m \d+s since /m);
    expect(status.stdout).toMatch(/^sessions +\d+ open/m);
    expect(status.stdout).toMatch(/^queue +no outbound queue/m);
    expect(status.stdout).toMatch(/^transactions +.*1 queued/m);
    expect(status.stdout).toContain(
      "@postern/admin, @postern/transaction-log, @postern/recipients, @postern/store-maildir",
    );
    expect(status.stdout).toMatch(new RegExp(`127\\.0\\.0\\.1:${smtpPort}\\s+none`));

    const trace = await runCli(["trace", queueId], cwd);
    expect(trace.code).toBe(0);
    expect(trace.stdout).toMatch(new RegExp(`^queue id +${queueId} \\(node mx\\.test`, "m"));
    expect(trace.stdout).toMatch(/^outcome +queued/m);
    expect(trace.stdout).toMatch(/^postmaster@localhost +accepted +local/m);
    expect(trace.stdout).toMatch(/ rcptTo +@postern\/recipients +accept /);
    expect(trace.stdout).toMatch(/ queue +@postern\/store-maildir +accept /);
    expect(trace.stdout).toMatch(new RegExp(`^reply +250 2\\.0\\.0 Ok: queued as ${queueId}`, "m"));

    const missing = await runCli(["trace", "NOSUCHQUEUEID"], cwd);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("postern trace: NOSUCHQUEUEID is not among the recent transactions the server keeps\n");

    // The per-transaction log line tells the same story (pino on stdout).
    const line = cli
      .stdout()
      .split("\n")
      .find((entry) => entry.includes(`"queueId":"${queueId}"`) && entry.includes('"msg":"transaction"'));
    expect(JSON.parse(line!)).toMatchObject({ outcome: "queued", from: "sender@example.org", helo: "client.test" });

    process.kill(cli.pid, "SIGTERM");
    expect((await cli.exited()).code).toBe(0);
    const down = await runCli(["status"], cwd);
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(
      `postern status: nothing listens on http://127.0.0.1:${adminPort}: is postern start running with @postern/admin?\n`,
    );
  });
});
