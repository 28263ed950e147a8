// The deployment files in deploy/: the systemd unit passes systemd's own checks with the hardening
// the guide promises, and the certbot deploy hook installs a renewed certificate that a running
// `postern start` then serves after the SIGHUP the hook sends.
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFile, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout } from "node:timers/promises";
import type { TLSSocket } from "node:tls";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { connectSmtp, createTestCertificate } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, killRunningClis, makeTempDir, removeTempDirs, startCli } from "./test-support/cli-process.ts";

const run = promisify(execFile);
const deployDir = fileURLToPath(new URL("../deploy/", import.meta.url));
const unit = join(deployDir, "postern.service");
const hook = join(deployDir, "certbot-deploy-hook.sh");

afterEach(async () => {
  await killRunningClis();
  await removeTempDirs();
});

describe("deploy/postern.service", () => {
  it("passes systemd-analyze verify without a complaint", async () => {
    const { stdout, stderr } = await run("systemd-analyze", ["verify", unit]);
    expect(`${stdout}${stderr}`).toBe("");
  });

  it("is hardened: own user, only CAP_NET_BIND_SERVICE, read-only system, restart, reload by SIGHUP", async () => {
    const text = await readFile(unit, "utf8");
    const settings = new Map<string, string[]>();
    for (const line of text.split("\n")) {
      const match = /^([A-Za-z]+)=(.*)$/.exec(line);
      if (match) settings.set(match[1]!, [...(settings.get(match[1]!) ?? []), match[2]!]);
    }
    expect(settings.get("User")).toEqual(["postern"]);
    expect(settings.get("AmbientCapabilities")).toEqual(["CAP_NET_BIND_SERVICE"]);
    expect(settings.get("CapabilityBoundingSet")).toEqual(["CAP_NET_BIND_SERVICE"]);
    expect(settings.get("NoNewPrivileges")).toEqual(["true"]);
    expect(settings.get("ProtectSystem")).toEqual(["strict"]);
    expect(settings.get("ReadWritePaths")).toBeDefined();
    expect(settings.get("Restart")).toEqual(["on-failure"]);
    expect(settings.get("ExecReload")).toEqual(["/bin/kill -HUP $MAINPID"]);

    // systemd's own rating, 0 (locked down) to 10 (exposed); "OK" is below 5.
    const { stdout } = await run("systemd-analyze", ["security", "--offline=true", unit]);
    const level = Number(/Overall exposure level for postern\.service: ([\d.]+)/.exec(stdout)?.[1]);
    expect(level).toBeLessThanOrEqual(2);
  });
});

describe("deploy/certbot-deploy-hook.sh", () => {
  it("refuses to run outside certbot in one line", async () => {
    const failed = await run("sh", [hook], { env: { PATH: process.env.PATH ?? "" } }).catch((error: unknown) => error);
    expect((failed as { code: number }).code).not.toBe(0);
    expect((failed as { stderr: string }).stderr.trim()).toMatch(
      /RENEWED_LINEAGE is not set: this script is run by certbot/,
    );
  });

  it("installs the renewed certificate (0640) and the running server serves it after the reload", async () => {
    const site = await makeTempDir("deploy");
    const tlsDir = join(site, "tls");
    const lineage = join(site, "live");
    await mkdir(lineage);
    const first = await createTestCertificate(["mx.example.org"], { dir: await makeTempDir("cert1") });
    const renewed = await createTestCertificate(["mx.example.org"], { dir: await makeTempDir("cert2") });
    const { stdout: group } = await run("id", ["-gn"]);
    const hookEnv = (reload: string) => ({
      PATH: process.env.PATH ?? "",
      RENEWED_LINEAGE: lineage,
      POSTERN_TLS_DIR: tlsDir,
      POSTERN_GROUP: group.trim(),
      POSTERN_RELOAD: reload,
    });
    const installFrom = async (certificate: { certificate: string; key: string }, reload: string) => {
      await copyFile(certificate.certificate, join(lineage, "fullchain.pem"));
      await copyFile(certificate.key, join(lineage, "privkey.pem"));
      return run("sh", [hook], { env: hookEnv(reload) });
    };

    const installed = await installFrom(first, "true");
    expect(installed.stdout).toContain(`postern: installed the certificate of ${lineage} in ${tlsDir}`);
    expect((await stat(join(tlsDir, "key.pem"))).mode & 0o777).toBe(0o640);
    expect((await stat(join(tlsDir, "cert.pem"))).mode & 0o777).toBe(0o640);

    const port = await freePort();
    await writeFile(
      join(site, "postern.yaml"),
      `hostname: mx.example.org
listeners:
  - port: ${port}
    tls: starttls
    certificate: ./tls/cert.pem
    key: ./tls/key.pem
# Only the hook's SIGHUP may reload here, so the test sees that path and not the file watch.
tlsReload: { watchFiles: false }
plugins:
  - package: "@postern/recipients"
    options: { domains: [example.org] }
  - package: "@postern/store-maildir"
    options: { root: ./mail }
`,
    );
    const cli = startCli(["start"], site);
    await cli.waitForStderr(/listening on /);
    const fingerprint = async (path: string) => new X509Certificate(await readFile(path)).fingerprint256;
    expect(await servedFingerprint(port)).toBe(await fingerprint(first.certificate));

    await installFrom(renewed, `kill -HUP ${cli.pid}`);
    // SIGHUP reloads the whole configuration, the certificates with it; ask until the new one is served.
    await cli.waitForStderr(/SIGHUP: configuration reloaded/);
    const wanted = await fingerprint(renewed.certificate);
    let served = await servedFingerprint(port);
    while (served !== wanted) {
      await setTimeout(50);
      served = await servedFingerprint(port);
    }
    expect(served).toBe(wanted);
    process.kill(cli.pid, "SIGTERM");
    expect((await cli.exited()).code).toBe(0);
  });
});

/** The SHA-256 fingerprint of the certificate the listener presents after STARTTLS. */
async function servedFingerprint(port: number): Promise<string> {
  const client = await connectSmtp(port);
  try {
    await client.read();
    await client.command("EHLO client.test");
    expect((await client.startTls({ servername: "mx.example.org" })).code).toBe(220);
    return (client.socket as TLSSocket).getPeerX509Certificate()!.fingerprint256;
  } finally {
    client.close();
  }
}
