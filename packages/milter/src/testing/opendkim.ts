// A real OpenDKIM (Debian's opendkim) signing for one domain with a key made here, on a loopback
// port, for the milter tests. Mode "s" only: verifying would make it query DNS, which no test may.
import { generateKeyPairSync } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { canConnect, type Daemon, freePort, makeTempDir, startDaemon } from "@postern/testing";

export interface OpenDkim extends Daemon {
  /** "inet:127.0.0.1:PORT", or "unix:/…/opendkim.sock" */
  readonly address: string;
  readonly domain: string;
  readonly selector: string;
  /** The TXT record to publish at `${selector}._domainkey.${domain}`. */
  readonly record: string;
}

export async function startOpenDkim(
  options: {
    domain?: string;
    selector?: string;
    canonicalization?: string;
    /** Listen on a Unix socket instead of TCP. */
    unixSocket?: boolean;
    /** OpenDKIM's SignHeaders (comma-separated field names). */
    signHeaders?: string;
  } = {},
): Promise<OpenDkim> {
  const domain = options.domain ?? "example.org";
  const selector = options.selector ?? "postern";
  const dir = await makeTempDir("opendkim");
  const port = await freePort();
  const socketPath = join(dir, "opendkim.sock");
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const keyFile = join(dir, `${selector}.private`);
  await writeFile(keyFile, privateKey.export({ type: "pkcs1", format: "pem" }), { mode: 0o600 });
  const record = `v=DKIM1; k=rsa; p=${publicKey.export({ type: "spki", format: "der" }).toString("base64")}`;
  const config = join(dir, "opendkim.conf");
  await writeFile(
    config,
    [
      options.unixSocket ? `Socket local:${socketPath}` : `Socket inet:${port}@127.0.0.1`,
      ...(options.signHeaders ? [`SignHeaders ${options.signHeaders}`] : []),
      `Domain ${domain}`,
      `Selector ${selector}`,
      `KeyFile ${keyFile}`,
      "Mode s",
      `Canonicalization ${options.canonicalization ?? "relaxed/relaxed"}`,
      "Background no",
      `PidFile ${join(dir, "opendkim.pid")}`,
      "RequireSafeKeys no",
      "Syslog no",
      // Sign whatever arrives: the tests connect from 127.0.0.1, OpenDKIM's default internal host.
      "",
    ].join("\n"),
  );
  const daemon = await startDaemon({
    name: "opendkim",
    command: "opendkim",
    args: ["-f", "-x", config],
    dir,
    ready: () => (options.unixSocket ? canConnect({ path: socketPath }) : canConnect(port)),
  });
  return Object.assign(Object.create(daemon) as Daemon, {
    address: options.unixSocket ? `unix:${socketPath}` : `inet:127.0.0.1:${port}`,
    domain,
    selector,
    record,
  }) as OpenDkim;
}
