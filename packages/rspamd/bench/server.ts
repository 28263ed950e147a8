// The Postern server pipeline.ts measures, in its own process so its CPU is its own:
//   node --conditions=dev-source server.ts <pipeline|rspamd|clamav|both> <dns host:port> <rspamd url> <clamd address>
// The inbound pipeline of tooling/bench's "full pipeline" row (rate-limit, recipients, spf, dkim
// verify, dmarc, Maildir with fsync), plus @postern/rspamd and/or @postern/clamav before storage.
// A last data hook sums what the filters recorded: the time each check took as Postern saw it, and
// rspamd's own scan time (its time_real). IPC: {type:"ready", port}; {type:"stats"} → totals;
// {type:"reset"}; {type:"stop"}.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import clamav, { clamavResult } from "@postern/clamav";
import { createLogger, createServer, type Plugin } from "@postern/core";
import dkim from "@postern/dkim";
import dmarc from "@postern/dmarc";
import rateLimit from "@postern/rate-limit";
import recipients from "@postern/recipients";
import spf from "@postern/spf";
import maildir from "@postern/store-maildir";
import rspamd, { rspamdResult } from "../src/index.ts";

const [mode = "pipeline", dnsServer = "127.0.0.1:9", rspamdUrl = "", clamdAddress = ""] = process.argv.slice(2);
const dir = await mkdtemp(join(tmpdir(), "postern-rspamd-bench-"));

const totals = { messages: 0, rspamdMs: 0, rspamdScanMs: 0, rspamdScans: 0, clamdMs: 0, clamdScans: 0, unscanned: 0 };

const tally: Plugin = {
  name: "bench:tally",
  hooks: {
    data: {
      order: "post",
      handler(transaction) {
        totals.messages++;
        const spam = transaction.results.get(rspamdResult);
        if (spam?.status === "scanned") {
          totals.rspamdMs += spam.durationMs;
          totals.rspamdScanMs += spam.scanMs ?? 0;
          totals.rspamdScans++;
        } else if (spam) totals.unscanned++;
        const virus = transaction.results.get(clamavResult);
        if (virus?.status === "clean" || virus?.status === "infected") {
          totals.clamdMs += virus.durationMs;
          totals.clamdScans++;
        } else if (virus) totals.unscanned++;
        return undefined;
      },
    },
  },
};

const filters: Plugin[] = [];
if (mode === "rspamd" || mode === "both") filters.push(rspamd({ url: rspamdUrl }));
if (mode === "clamav" || mode === "both") filters.push(clamav({ address: clamdAddress }));

const server = createServer(
  {
    hostname: "mx.bench.test",
    listeners: [{ address: "127.0.0.1", port: 1, greetingDelayMs: 0 }],
    dns: { servers: [dnsServer], timeoutMs: 2000 },
    spoolDir: join(dir, "spool"),
    plugins: [
      // Limits far above what the benchmark sends, so every message passes every check.
      rateLimit({
        limits: [
          { kind: "concurrent", limit: 10_000 },
          { kind: "connections", limit: "1000000/1m" },
          { kind: "messages", limit: "1000000/1m" },
          { kind: "recipients", limit: "1000000/1m" },
        ],
      }),
      recipients({ domains: ["bench.test"] }),
      spf({}),
      dkim({}),
      dmarc({}),
      ...filters,
      tally,
      maildir({ root: join(dir, "maildir") }),
    ],
  },
  { logger: createLogger({ level: "warn" }) },
);
server.config.listeners[0]!.port = 0;
await server.start();

process.on("message", async (request: { type: string }) => {
  if (request.type === "stats") process.send!({ type: "stats", ...totals });
  else if (request.type === "reset") {
    for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] = 0;
    process.send!({ type: "reset" });
  } else if (request.type === "stop") {
    await server.stop();
    await rm(dir, { recursive: true, force: true });
    process.exit(0);
  }
});
process.send!({ type: "ready", port: server.addresses()[0]!.port });
