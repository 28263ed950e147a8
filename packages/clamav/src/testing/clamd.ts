// A real clamd (Debian's clamav-daemon) for tests. Signatures cannot be downloaded here, so the
// database is one line written at start: the EICAR test file as a body signature (.ndb), which
// clamd also finds inside base64 attachments (it decodes MIME). With one signature clamd starts in
// well under a second; the start is bounded all the same.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type Daemon, freePort, makeTempDir, startDaemon } from "@postern/testing";
import { ping } from "../clamd-client.ts";

/**
 * The EICAR anti-virus test file (68 bytes). Assembled at run time so the repository's own
 * files do not carry it (scanners on developers' machines would flag them).
 */
export function eicarTestFile(): string {
  return ["X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-", "ANTIVIRUS-TEST-FILE!$H+H*"].join("");
}

/** The name of the test signature, as clamd reports it (custom databases get ".UNOFFICIAL"). */
export const eicarSignature = "Eicar-Test-Signature.UNOFFICIAL";

export interface Clamd extends Daemon {
  /** "inet:127.0.0.1:PORT" */
  readonly tcpAddress: string;
  /** "unix:/…/clamd.sock" */
  readonly unixAddress: string;
  readonly port: number;
  readonly socketPath: string;
  /** How long clamd took from spawn to answering PING (ms). */
  readonly startMs: number;
  log(): Promise<string>;
}

export async function startClamd(options: { streamMaxLength?: string; startTimeoutMs?: number } = {}): Promise<Clamd> {
  const dir = await makeTempDir("clamd");
  const port = await freePort();
  const socketPath = join(dir, "clamd.sock");
  const databaseDir = join(dir, "db");
  await mkdir(databaseDir);
  const hex = Buffer.from(eicarTestFile(), "latin1").toString("hex");
  await writeFile(join(databaseDir, "postern-test.ndb"), `Eicar-Test-Signature:0:*:${hex}\n`);
  const config = join(dir, "clamd.conf");
  await writeFile(
    config,
    [
      "Foreground yes",
      `DatabaseDirectory ${databaseDir}`,
      `LocalSocket ${socketPath}`,
      `TCPSocket ${port}`,
      "TCPAddr 127.0.0.1",
      `LogFile ${join(dir, "clamd.log")}`,
      `StreamMaxLength ${options.streamMaxLength ?? "40M"}`,
      "Bytecode no",
      "SelfCheck 0",
      // clamd remembers the hashes of clean files and skips scanning them again: off, so every
      // scan in a test or a benchmark is a real one.
      "DisableCache yes",
      "MaxThreads 4",
      "",
    ].join("\n"),
  );
  const started = Date.now();
  const daemon = await startDaemon({
    name: "clamd",
    command: "clamd",
    args: ["--config-file", config],
    dir,
    startTimeoutMs: options.startTimeoutMs ?? 20_000,
    ready: () => ping({ kind: "tcp", host: "127.0.0.1", port }, 500).catch(() => false),
  });
  const startMs = Date.now() - started;
  return Object.assign(Object.create(daemon) as Daemon, {
    tcpAddress: `inet:127.0.0.1:${port}`,
    unixAddress: `unix:${socketPath}`,
    port,
    socketPath,
    startMs,
    log: () => readFile(join(dir, "clamd.log"), "utf8").catch(() => ""),
  }) as Clamd;
}
