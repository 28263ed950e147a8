// A Postern server with the outbound plugin, run as its own process by restart.test.ts so the
// test can kill it (SIGKILL: no shutdown code runs) in the middle of a delivery and start it again
// on the same spool. Settings come from the environment; it prints {"childPort": n} when ready.
import { createServer } from "@postern/core";
import { claimRecipients } from "@postern/testing";
import outbound from "../index.ts";

const plugin = outbound({
  queue: { type: "fs", dir: process.env.OUTBOUND_SPOOL! },
  port: Number(process.env.OUTBOUND_MX_PORT),
  retry: { initialDelayMs: 200, maxDelayMs: 1_000, jitter: 0 },
  worker: { pollIntervalMs: 100 },
});
const server = createServer({
  hostname: "child.postern.test",
  listeners: [{ address: "127.0.0.1", port: 1 }],
  dns: { servers: [process.env.OUTBOUND_DNS!], timeoutMs: 2000, cacheTtlMs: 0 },
  log: { level: "warn" },
  plugins: [claimRecipients({ route: "relay" }), plugin],
});
// Port 1 only satisfies the schema; bind an ephemeral port.
for (const listener of server.config.listeners) listener.port = 0;
await server.start();
process.stdout.write(`${JSON.stringify({ childPort: server.addresses()[0]!.port })}\n`);
process.on("SIGTERM", () => {
  server.stop().then(() => process.exit(0));
});
