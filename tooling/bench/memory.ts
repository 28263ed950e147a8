// Memory benchmark: sends one large message (30 MB by default) to a Postern server running in a
// child process and prints the server's peak RSS growth while it received and stored it.
// Target (issue 2): under 32 MB of growth for a 30 MB message.
//   node --conditions=dev-source tooling/bench/memory.ts [sizeMB]
import { type ChildProcess, fork } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import nodemailer from "nodemailer";

const sizeMb = Number(process.argv[2] ?? 30);
const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

function ask<T>(child: ChildProcess, type: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (message: { type: string }) => {
      if (message.type !== type) return;
      child.off("message", onMessage);
      resolve(message as T);
    };
    child.on("message", onMessage);
    if (type !== "ready") child.send({ type });
  });
}

const dir = await mkdtemp(join(tmpdir(), "postern-bench-msg-"));
const messagePath = join(dir, "large.eml");
const line = `${"abcdefghijklmnopqrstuvwxyz0123456789".repeat(2).slice(0, 76)}\r\n`;
const file = await open(messagePath, "w");
await file.write("From: <bench@example.org>\r\nTo: <user@bench.test>\r\nSubject: large\r\n\r\n");
const block = line.repeat(Math.ceil((1024 * 1024) / line.length));
for (let i = 0; i < sizeMb; i++) await file.write(block);
await file.close();
await writeFile(join(dir, "small.eml"), "Subject: warm-up\r\n\r\nhello\r\n");

const child = fork(fileURLToPath(new URL("./memory-server.ts", import.meta.url)), {
  execArgv: [
    "--conditions=dev-source",
    "--expose-gc",
    ...(process.env.BENCH_NODE_FLAGS?.split(" ").filter(Boolean) ?? []),
  ],
  stdio: ["ignore", "inherit", "inherit", "ipc"],
});
const { port } = await ask<{ port: number }>(child, "ready");
const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true });
const envelope = { from: "bench@example.org", to: "user@bench.test" };

await transport.sendMail({ envelope, raw: { path: join(dir, "small.eml") } });
const { rss: baseline } = await ask<{ rss: number }>(child, "reset");
const started = process.hrtime.bigint();
await transport.sendMail({ envelope, raw: createReadStream(messagePath) });
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const { rss: peak } = await ask<{ rss: number }>(child, "peak");
transport.close();
child.send({ type: "stop" });
await new Promise((resolve) => child.once("exit", resolve));
await rm(dir, { recursive: true, force: true });

const growth = peak - baseline;
console.log(`message            ${sizeMb} MB`);
console.log(`server RSS before  ${mb(baseline)} MB`);
console.log(`server RSS peak    ${mb(peak)} MB`);
console.log(`peak RSS growth    ${mb(growth)} MB (target < 32 MB) ${growth < 32 * 1024 * 1024 ? "OK" : "OVER"}`);
console.log(
  `throughput         ${(sizeMb / seconds).toFixed(1)} MB/s (${seconds.toFixed(2)} s, received + stored with fsync)`,
);
