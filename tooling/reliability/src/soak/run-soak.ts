// The soak: `postern start` (as an operator runs it) with an MX listener (STARTTLS offered) and a
// submission listener (STARTTLS, then AUTH required), storing local mail in PostgreSQL
// (@postern/store-postgres) and relaying through @postern/outbound's PostgreSQL queue to a sink
// SMTP server on loopback. Mixed sessions run for the given time while a probe inside the server
// samples RSS, heap after GC, external memory, open fds and event-loop delay.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { hashPassword, updatePasswordFile } from "@postern/auth";
import { accept, type Plugin } from "@postern/core";
import { claimRecipients, createTestCertificate, type RawSmtpClient, startTestServer } from "@postern/testing";
import pg from "pg";
import { type FaultLoad, startFaultLoad } from "../support/fault-load.ts";
import { freePort, startPostern, writeConfig } from "../support/postern-process.ts";
import { type Sample, type Trend, trends } from "./trend.ts";

const probe = fileURLToPath(new URL("./probe.ts", import.meta.url));

export interface SoakOptions {
  durationMs: number;
  intervalMs: number;
  /** Samples taken before this are warm-up, left out of the trend. */
  warmupMs: number;
  databaseUrl?: string;
  /** Progress lines (one per sample) go here. */
  progress?: (line: string) => void;
}

export interface SoakResult {
  samples: Sample[];
  trends: Trend[];
  mx: FaultLoad;
  submission: FaultLoad;
  /** Messages the sink received from the outbound queue. */
  delivered: number;
  exit: number | NodeJS.Signals;
}

/** A sink for relayed mail: takes every message, reads it, keeps nothing. */
function discardingStore(counter: { delivered: number }): Plugin {
  return {
    name: "reliability:discard",
    hooks: {
      async queue(_transaction, message) {
        for await (const _chunk of message.stream()) {
          // Read to the end, as a real store would.
        }
        counter.delivered++;
        return accept();
      },
    },
  } satisfies Plugin;
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const databaseUrl = options.databaseUrl ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const suffix = `${process.pid}_${Date.now().toString(36)}`;
  const schemas = [`soak_mail_${suffix}`, `soak_queue_${suffix}`] as const;
  const dir = await mkdtemp(join(tmpdir(), "postern-soak-"));
  const counter = { delivered: 0 };
  const sink = await startTestServer({
    plugins: [claimRecipients(), discardingStore(counter)],
    config: { listeners: [{ address: "127.0.0.1", port: 1 }] },
  });
  try {
    const certificate = await createTestCertificate(["mx.soak.test", "localhost"], { dir });
    const passwordFile = join(dir, "users");
    // A low scrypt cost: every submission session checks a password, and the soak measures the
    // server, not scrypt.
    const hash = await hashPassword("soak-password", { cost: 10 });
    await updatePasswordFile(passwordFile, (file) => file.set("alice@soak.test", hash), { create: true });
    const [mxPort, submissionPort] = [await freePort(), await freePort()];
    const tls = { tls: "starttls", certificate: certificate.certificate, key: certificate.key };
    const config = await writeConfig(dir, {
      hostname: "mx.soak.test",
      listeners: [
        { name: "mx", address: "127.0.0.1", port: mxPort, ...tls },
        { name: "submission", address: "127.0.0.1", port: submissionPort, ...tls, auth: "required" },
      ],
      spoolDir: join(dir, "spool"),
      log: { level: "warn" },
      plugins: [
        { package: "@postern/auth", options: { passwordFile } },
        { package: "@postern/recipients", options: { domains: ["soak.test"] } },
        { package: "@postern/store-postgres", options: { connectionString: databaseUrl, schema: schemas[0] } },
        {
          package: "@postern/outbound",
          options: {
            queue: { type: "postgres", connectionString: databaseUrl, schema: schemas[1] },
            routes: { "remote.test": { host: "127.0.0.1", port: sink.port, tls: "none" } },
          },
        },
      ],
    });
    const samplesFile = join(dir, "samples.jsonl");
    const server = await startPostern(config, 60_000, {
      nodeArgs: ["--expose-gc", "--import", probe],
      env: { POSTERN_SOAK_SAMPLES: samplesFile, POSTERN_SOAK_INTERVAL_MS: String(options.intervalMs) },
    });
    const mx = startFaultLoad({
      port: mxPort,
      sessions: 3,
      recipients: ["user@soak.test"],
      tag: "soak-mx",
      messagesPerConnection: 5,
      pauseMs: 100,
    });
    const submission = startFaultLoad({
      port: submissionPort,
      sessions: 2,
      recipients: ["someone@remote.test", "user@soak.test"],
      sender: "alice@soak.test",
      tag: "soak-submission",
      messagesPerConnection: 3,
      pauseMs: 100,
      open: submit,
      // Every tenth message is large enough for the spool file.
      size: (sequence) => (sequence % 10 === 9 ? 300_000 : 2000 + ((sequence * 7919) % 10_000)),
    });

    const readSamples = async (): Promise<Sample[]> =>
      (await readFile(samplesFile, "utf8").catch(() => ""))
        .split("\n")
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Sample);
    const started = Date.now();
    let reported = 0;
    while (Date.now() - started < options.durationMs) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const samples = await readSamples();
      for (const sample of samples.slice(reported)) {
        options.progress?.(
          `${(sample.atMs / 1000).toFixed(0).padStart(5)} s  rss ${sample.rssMb.toFixed(1)} MB  heap ${sample.heapUsedMb.toFixed(1)} MB  external ${sample.externalMb.toFixed(1)} MB  fds ${sample.fds}  loop p99 ${sample.eventLoop.p99Ms.toFixed(1)} ms  | mx ${mx.acknowledged.size} submission ${submission.acknowledged.size} relayed ${counter.delivered}`,
        );
      }
      reported = samples.length;
      if (server.child.exitCode !== null) throw new Error(`postern exited during the soak:\n${server.output()}`);
    }
    await Promise.all([mx.stop(), submission.stop()]);
    const samples = await readSamples();
    server.child.kill("SIGTERM");
    const exit = await server.exited;
    const warmup = samples.filter((sample) => sample.atMs < options.warmupMs).length;
    return { samples, trends: trends(samples, warmup), mx, submission, delivered: counter.delivered, exit };
  } finally {
    await sink.stop();
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await client.end();
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** Submission: STARTTLS, EHLO again, AUTH PLAIN. */
async function submit(client: RawSmtpClient): Promise<RawSmtpClient> {
  const expect = async (line: string, code: number) => {
    const reply = await client.command(line);
    if (reply.code !== code) throw new Error(`${line}: ${reply.code} ${reply.text}`);
  };
  await expect("EHLO submission.soak.test", 250);
  const started = await client.startTls();
  if (started.code !== 220) throw new Error(`STARTTLS: ${started.code} ${started.text}`);
  await expect("EHLO submission.soak.test", 250);
  await expect(`AUTH PLAIN ${Buffer.from("\0alice@soak.test\0soak-password").toString("base64")}`, 235);
  return client;
}

/** The figures as a table, and the verdict per figure. */
export function describeSoak(result: SoakResult): string {
  const lines = [
    `messages: MX ${result.mx.acknowledged.size} acknowledged, submission ${result.submission.acknowledged.size} acknowledged, ${result.delivered} relayed to the sink; refusals ${result.mx.temporary.length + result.submission.temporary.length} 4xx, ${result.mx.permanent.length + result.submission.permanent.length} 5xx, hangs ${result.mx.hangs.length + result.submission.hangs.length}`,
    `samples: ${result.samples.length}; server exit: ${result.exit}`,
    "figure                 first     last      min       max       slope/h    growth    bound   trend",
  ];
  for (const trend of result.trends) {
    const cell = (value: number) => `${value.toFixed(1)}${trend.unit}`.padEnd(10);
    lines.push(
      `${trend.figure.padEnd(22)} ${cell(trend.first)}${cell(trend.last)}${cell(trend.min)}${cell(trend.max)}${`${trend.slopePerHour.toFixed(1)}${trend.unit}`.padEnd(11)}${cell(trend.growth)}${`${trend.bound}${trend.unit}`.padEnd(8)}${trend.growing ? "GROWING" : "flat"}`,
    );
  }
  const p99 = result.samples.map((sample) => sample.eventLoop.p99Ms);
  const max = result.samples.map((sample) => sample.eventLoop.maxMs);
  lines.push(
    `event-loop delay: p99 per interval median ${median(p99).toFixed(1)} ms, worst ${Math.max(0, ...p99).toFixed(1)} ms; max ${Math.max(0, ...max).toFixed(1)} ms`,
  );
  return lines.join("\n");
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}
