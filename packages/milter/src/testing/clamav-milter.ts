// A real clamav-milter (Debian's clamav-milter) in front of a test clamd, rejecting infected mail.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Clamd } from "@postern/clamav/testing";
import { canConnect, type Daemon, freePort, makeTempDir, startDaemon } from "@postern/testing";

export interface ClamavMilter extends Daemon {
  /** "inet:127.0.0.1:PORT" */
  readonly address: string;
}

export async function startClamavMilter(clamd: Clamd): Promise<ClamavMilter> {
  const dir = await makeTempDir("clamav-milter");
  const port = await freePort();
  const config = join(dir, "clamav-milter.conf");
  await writeFile(
    config,
    [
      `MilterSocket inet:${port}@127.0.0.1`,
      `ClamdSocket tcp:127.0.0.1:${clamd.port}`,
      "Foreground yes",
      "OnInfected Reject",
      // With a message, clamav-milter answers with SMFIR_REPLYCODE (550 5.7.1 …), not a bare reject.
      "RejectMsg Virus found: %v",
      "OnFail Defer",
      "AddHeader Add",
      `LogFile ${join(dir, "clamav-milter.log")}`,
      `PidFile ${join(dir, "clamav-milter.pid")}`,
      "",
    ].join("\n"),
  );
  const daemon = await startDaemon({
    name: "clamav-milter",
    command: "clamav-milter",
    args: ["--config-file", config],
    dir,
    ready: () => canConnect(port),
  });
  return Object.assign(Object.create(daemon) as Daemon, { address: `inet:127.0.0.1:${port}` }) as ClamavMilter;
}
