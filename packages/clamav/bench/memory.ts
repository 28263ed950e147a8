// Memory and throughput of @postern/clamav with a real clamd: one 30 MB message (by default) sent
// over SMTP to a Postern server (its own process) that scans it with INSTREAM, and the server's
// peak RSS growth meanwhile (target: under 32 MB of growth, as for the server alone); then clamd's
// INSTREAM throughput measured directly, streaming the same bytes from a file.
//   node --conditions=dev-source packages/clamav/bench/memory.ts [sizeMB]
import { type ChildProcess, fork } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdtemp, open, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sendMail } from "@postern/testing";
import { scanStream } from "../src/clamd-client.ts";
import { parseClamdAddress } from "../src/options.ts";
import { startClamd } from "../src/testing/clamd.ts";

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

const clamd = await startClamd({ streamMaxLength: "64M" });
const dir = await mkdtemp(join(tmpdir(), "postern-clamav-bench-"));
const messagePath = join(dir, "large.eml");
const line = `${"abcdefghijklmnopqrstuvwxyz0123456789".repeat(2).slice(0, 76)}\r\n`;
const file = await open(messagePath, "w");
await file.write("From: <bench@example.org>\r\nTo: <user@bench.test>\r\nSubject: large\r\n\r\n");
const block = line.repeat(Math.ceil((1024 * 1024) / line.length));
for (let i = 0; i < sizeMb; i++) await file.write(block);
const messageBytes = (await file.stat()).size;
await file.close();

/** One 30 MB message to a server in its own process: its peak RSS growth and the seconds taken. */
async function throughServer(
  clamdAddress: string,
): Promise<{ baseline: number; peak: number; seconds: number; scanMs: number | undefined }> {
  const child = fork(fileURLToPath(new URL("./memory-server.ts", import.meta.url)), [clamdAddress], {
    execArgv: ["--conditions=dev-source", "--expose-gc"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const { port } = await ask<{ port: number }>(child, "ready");
  const envelope = { port, from: "bench@example.org", to: "user@bench.test", startTls: false };
  await sendMail({ ...envelope, raw: "Subject: warm-up\r\n\r\nhello\r\n" });
  // The client holds the message in memory; the server (the measured process) must not.
  const raw = await readFile(messagePath);
  const { rss: baseline } = await ask<{ rss: number }>(child, "reset");
  const started = process.hrtime.bigint();
  await sendMail({ ...envelope, raw });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const { rss: peak, scanMs } = await ask<{ rss: number; scanMs?: number }>(child, "peak");
  child.send({ type: "stop" });
  await new Promise((resolve) => child.once("exit", resolve));
  return { baseline, peak, seconds, scanMs };
}

const plain = await throughServer("none");
const { baseline, peak, seconds: smtpSeconds, scanMs } = await throughServer(clamd.tcpAddress);

// clamd alone: INSTREAM from a file, three runs, the median.
const address = parseClamdAddress(clamd.tcpAddress)!;
const runs: number[] = [];
for (let run = 0; run < 3; run++) {
  const begin = process.hrtime.bigint();
  const verdict = await scanStream(address, createReadStream(messagePath, { highWaterMark: 256 * 1024 }), {
    connectTimeoutMs: 2000,
    scanTimeoutMs: 120_000,
    chunkSize: 64 * 1024,
    maxBytes: 64 * 1024 * 1024,
  });
  if (verdict.status !== "clean") throw new Error(`unexpected verdict ${JSON.stringify(verdict)}`);
  runs.push(Number(process.hrtime.bigint() - begin) / 1e9);
}
runs.sort((a, b) => a - b);
const scanSeconds = runs[1]!;

await clamd.stop();
await rm(dir, { recursive: true, force: true });

const growth = peak - baseline;
console.log(`message              ${mb(messageBytes)} MB`);
console.log(`clamd start          ${clamd.startMs} ms (one-signature database)`);
console.log(`server RSS before    ${mb(baseline)} MB`);
console.log(`server RSS peak      ${mb(peak)} MB`);
console.log(`peak RSS growth      ${mb(growth)} MB (target < 32 MB) ${growth < 32 * 1024 * 1024 ? "OK" : "OVER"}`);
const rate = (seconds: number) => (messageBytes / 1024 / 1024 / seconds).toFixed(1);
console.log(
  `SMTP without clamav  ${plain.seconds.toFixed(2)} s (${rate(plain.seconds)} MB/s: received, spooled, drained; RSS growth ${mb(plain.peak - plain.baseline)} MB)`,
);
console.log(
  `SMTP + scan          ${smtpSeconds.toFixed(2)} s (${rate(smtpSeconds)} MB/s: received, spooled, scanned, drained)`,
);
console.log(
  `  of which the scan   ${((scanMs ?? 0) / 1000).toFixed(2)} s in the data hook (${rate((scanMs ?? 1) / 1000)} MB/s)`,
);
console.log(
  `INSTREAM alone       ${scanSeconds.toFixed(2)} s median of 3 (${rate(scanSeconds)} MB/s, from a file, 64 KiB chunks)`,
);
