// SMTP AUTH timing: how long the server takes to answer AUTH PLAIN for a known user with the wrong
// password, an unknown user (checked against a decoy hash of the same cost), and the right
// password. The first two should be indistinguishable. Loopback only, in-process server, bounded.
//   node --conditions=dev-source tooling/bench/smtp-auth-timing.ts [attempts=20] [scryptCost=15]
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectSmtp, createTestCertificate, startTestServer } from "@postern/testing";
import auth, { hashPassword, updatePasswordFile } from "../../packages/auth/src/index.ts";

const attempts = Number(process.argv[2] ?? 20);
const cost = Number(process.argv[3] ?? 15);
process.env.POSTERN_TEST_LOG = "warn";

const dir = await mkdtemp(join(tmpdir(), "postern-bench-auth-"));
const passwordFile = join(dir, "users");
const hash = await hashPassword("right password", { cost });
await updatePasswordFile(passwordFile, (file) => file.set("alice@example.org", hash), { create: true });
const cert = await createTestCertificate(["mx.test"]);
const server = await startTestServer({
  plugins: [auth({ passwordFile, failureLimit: false })],
  config: {
    listeners: [{ port: 1, tls: "starttls", auth: "required", certificate: cert.certificate, key: cert.key }],
    tlsReload: { onSighup: false, watchFiles: false },
  },
});

const client = await connectSmtp(server.port);
await client.read();
await client.command("EHLO bench.test");
await client.startTls();
await client.command("EHLO bench.test");

const plain = (user: string, password: string) => Buffer.from(`\0${user}\0${password}`).toString("base64");
const cases = {
  "known user, wrong password": plain("alice@example.org", "wrong password"),
  "unknown user": plain("nobody@example.org", "wrong password"),
} as const;
const timings: Record<string, number[]> = { "known user, wrong password": [], "unknown user": [] };
for (let i = 0; i < attempts; i++) {
  for (const [name, token] of Object.entries(cases)) {
    const started = process.hrtime.bigint();
    const reply = await client.command(`AUTH PLAIN ${token}`);
    timings[name]!.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (reply.code !== 535) throw new Error(`expected 535, got ${reply.code} ${reply.text}`);
  }
}
const started = process.hrtime.bigint();
const ok = await client.command(`AUTH PLAIN ${plain("alice@example.org", "right password")}`);
const success = Number(process.hrtime.bigint() - started) / 1e6;
if (ok.code !== 235) throw new Error(`expected 235, got ${ok.code}`);
client.close();
await server.stop();
await rm(dir, { recursive: true, force: true });

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
console.log(`scrypt ln=${cost},r=8,p=1; ${attempts} attempts each, one TLS session, failure floor off`);
for (const [name, values] of Object.entries(timings)) {
  console.log(`${name.padEnd(28)} median ${median(values).toFixed(1)} ms  mean ${mean(values).toFixed(1)} ms`);
}
console.log(`${"right password".padEnd(28)} ${success.toFixed(1)} ms`);
