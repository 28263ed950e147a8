// No acknowledged message is lost when the process dies: a Postern process (a child, so it can be
// SIGKILLed) accepts mail, starts delivering to an MX that never answers the end of DATA, and is
// killed there. A new process on the same spool delivers every message it had acknowledged.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildMessage, type FakeDns, sendMail, startFakeDns } from "@postern/testing";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type MxSink, startSink } from "./test/mx-sink.ts";

const net = "127.0.12";
const childScript = fileURLToPath(new URL("./test/outbound-child.ts", import.meta.url));
let dns: FakeDns;
let spool: string;
const children: ChildProcess[] = [];
const sinks: MxSink[] = [];

beforeAll(async () => {
  dns = await startFakeDns({ "far.test": { MX: ["10 mx.far.test"] }, "mx.far.test": { A: [`${net}.2`] } });
  spool = await mkdtemp(join(tmpdir(), "postern-outbound-restart-"));
});
afterAll(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const sink of sinks) await sink.close();
  await dns.close();
  await rm(spool, { recursive: true, force: true });
});

async function startChild(mxPort: number): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ["--conditions=dev-source", childScript], {
    env: { ...process.env, OUTBOUND_SPOOL: spool, OUTBOUND_MX_PORT: String(mxPort), OUTBOUND_DNS: dns.servers[0]! },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error(`child did not start: ${stderr}`)), 20_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /\{"childPort":(\d+)\}/.exec(buffered);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once("exit", (code) => reject(new Error(`child exited (${code}): ${stderr}`)));
  });
  return { child, port };
}

it("delivers every acknowledged message after the process is killed mid-delivery", { timeout: 60_000 }, async () => {
  const hanging = await startSink({ host: `${net}.2`, stallData: true });
  sinks.push(hanging);
  const first = await startChild(hanging.port);
  const subjects: string[] = [];
  for (let i = 0; i < 4; i++) {
    const subject = `survivor ${i}`;
    const result = await sendMail({
      port: first.port,
      from: "sender@origin.test",
      to: `user${i}@far.test`,
      raw: buildMessage({ subject, to: `user${i}@far.test` }),
    });
    expect(result.response).toMatch(/^250 /);
    subjects.push(subject);
  }
  // Deliveries are under way: the MX has the bytes and the child waits for the final reply.
  await expect.poll(() => hanging.messages.length, { timeout: 15_000 }).toBeGreaterThan(0);
  first.child.kill("SIGKILL");
  await new Promise((resolve) => first.child.once("exit", resolve));
  await hanging.close();
  sinks.splice(sinks.indexOf(hanging), 1);

  const healthy = await startSink({ host: `${net}.2`, port: hanging.port });
  sinks.push(healthy);
  const second = await startChild(healthy.port);
  await expect.poll(() => healthy.messages.length, { timeout: 30_000 }).toBe(4);
  const delivered = healthy.messages.map((message) => /^Subject: (.*)\r$/m.exec(message.bytes.toString())?.[1]).sort();
  expect(delivered).toEqual(subjects.sort());
  // Delivered means gone from the spool.
  await expect.poll(async () => (await readdir(join(spool, "msg"))).length, { timeout: 10_000 }).toBe(0);
  expect(healthy.messages).toHaveLength(4);
  second.child.kill("SIGTERM");
  await new Promise((resolve) => second.child.once("exit", resolve));
});
