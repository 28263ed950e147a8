import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Message } from "./message.ts";
import { spoolMessage } from "./spool.ts";

let spoolDir: string;
beforeAll(async () => {
  spoolDir = await mkdtemp(join(tmpdir(), "postern-message-test-"));
});
afterAll(async () => {
  await rm(spoolDir, { recursive: true, force: true });
});

/** Spools `raw` as DATA would, in chunks of `chunkSize`, in memory or (threshold 0) on disk. */
async function spool(raw: string, options: { onDisk?: boolean; chunkSize?: number } = {}): Promise<Message> {
  const bytes = Buffer.from(raw, "latin1");
  const size = options.chunkSize ?? bytes.length;
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) chunks.push(bytes.subarray(offset, offset + size));
  const outcome = await spoolMessage(Readable.from(chunks), {
    maxSize: 10 * 1024 * 1024,
    memoryThreshold: options.onDisk ? 0 : 1024 * 1024,
    spoolDir,
    bareNewlines: "reject",
    maxLineLength: 998,
  });
  if (!outcome.ok) throw new Error(outcome.problem);
  return outcome.message;
}

async function text(message: Message): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of message.stream()) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("latin1");
}

const raw = [
  "Authentication-Results: mx.test; dkim=pass\r\n",
  "From: <a@example.org>\r\n",
  "Authentication-Results: other.example;\r\n\tspf=pass smtp.mailfrom=example.org\r\n",
  "Subject: Authentication-Results: mx.test; spf=pass\r\n",
  "authentication-results: mx.test;\r\n spf=pass\r\n",
  "\r\n",
  "Authentication-Results: mx.test; in the body stays\r\n",
].join("");

const isOurs = (field: { name: string; value: string }) =>
  field.name.toLowerCase() === "authentication-results" && field.value.startsWith("mx.test;");

describe("Message.removeHeader", () => {
  for (const [label, options] of [
    ["in memory", {}],
    ["on disk, in small chunks", { onDisk: true, chunkSize: 7 }],
  ] as const) {
    it(`drops the chosen original fields from stream() and headers, ${label}`, async () => {
      const message = await spool(raw, options);
      message.prepend("Received", "from client by mx.test");
      expect(message.removeHeader(isOurs)).toBe(2);
      expect(await text(message)).toBe(
        [
          "Received: from client by mx.test\r\n",
          "From: <a@example.org>\r\n",
          "Authentication-Results: other.example;\r\n\tspf=pass smtp.mailfrom=example.org\r\n",
          "Subject: Authentication-Results: mx.test; spf=pass\r\n",
          "\r\n",
          "Authentication-Results: mx.test; in the body stays\r\n",
        ].join(""),
      );
      expect(message.headers.getAll("Authentication-Results")).toEqual([
        "other.example;\tspf=pass smtp.mailfrom=example.org",
      ]);
      // stream() can be read again, and original() still has every byte.
      expect(await text(message)).toContain("other.example");
      const original: Buffer[] = [];
      for await (const chunk of message.original()) original.push(chunk as Buffer);
      expect(Buffer.concat(original).toString("latin1")).toBe(raw);
    });
  }

  it("removes nothing when nothing matches, and a second call finds nothing more", async () => {
    const message = await spool(raw);
    expect(message.removeHeader(() => false)).toBe(0);
    expect(await text(message)).toBe(raw);
    expect(message.removeHeader(isOurs)).toBe(2);
    expect(message.removeHeader(isOurs)).toBe(0);
  });

  it("keeps identical copies that were not chosen", async () => {
    const twice = "X-Tag: same\r\nX-Tag: same\r\nSubject: s\r\n\r\nbody\r\n";
    const message = await spool(twice, { chunkSize: 5 });
    const second = message.headers.fields[1]!;
    expect(message.removeHeader((field) => field === second)).toBe(1);
    expect(await text(message)).toBe("X-Tag: same\r\nSubject: s\r\n\r\nbody\r\n");
  });
});
