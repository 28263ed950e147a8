// The server an operator composes: recipients + spf + dkim + dmarc + store-maildir, DNS from a
// local zone. Each case checks the Maildir file itself: one Authentication-Results field by us,
// with the right results, and p=reject failures refused at the end of DATA with nothing stored.
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import dkim from "@postern/dkim";
import recipients from "@postern/recipients";
import spf from "@postern/spf";
import maildir from "@postern/store-maildir";
import { buildMessage, type SendError, startTestServer, type TestServer } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fixture, headersOf, zone } from "../test-fixtures/zone.ts";
import dmarc from "./index.ts";

let root: string;
let server: TestServer;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "postern-auth-pipeline-"));
  server = await startTestServer({
    plugins: [recipients({ domains: ["localhost"] }), spf(), dkim(), dmarc(), maildir({ root })],
    dns: zone,
  });
});
afterAll(async () => {
  await server.stop();
  await rm(root, { recursive: true, force: true });
});

/** Delivers to <mailbox>@localhost and returns the one file in its Maildir's new/. */
async function delivered(mailbox: string, envelopeFrom: string, raw: Buffer) {
  await server.send({ from: envelopeFrom, to: `${mailbox}@localhost`, raw });
  const directory = join(root, "localhost", mailbox, "new");
  const files = await readdir(directory);
  expect(files).toHaveLength(1);
  const bytes = await readFile(join(directory, files[0]!));
  const headers = headersOf(bytes);
  const ours = headers.getAll("Authentication-Results").filter((value) => /^mx\.test;/i.test(value));
  expect(ours).toHaveLength(1);
  expect(headers.fields[0]!.name).toBe("Authentication-Results");
  return { headers, authResults: ours[0]! };
}

describe("recipients + spf + dkim + dmarc + store-maildir", () => {
  it("dkimpy-signed, aligned: spf, dkim, dmarc and arc in one field", async () => {
    const { authResults } = await delivered("dkim-pass", "bounce@evil.example", fixture("dual.eml"));
    expect(authResults).toMatch(/spf=pass .*smtp\.mailfrom=bounce@evil\.example/);
    expect(authResults.match(/dkim=pass/g)).toHaveLength(2);
    expect(authResults).toMatch(/dmarc=pass .*header\.from=signed\.example/);
    expect(authResults).toMatch(/arc=none/);
  });

  it("SPF-aligned, unsigned: dmarc=pass through SPF, dkim=none", async () => {
    const { authResults, headers } = await delivered(
      "spf-pass",
      "boss@reject.example",
      buildMessage({ from: "boss@reject.example" }),
    );
    expect(authResults).toMatch(/spf=pass .*dkim=none .*dmarc=pass/s);
    expect(headers.get("Received-SPF")).toMatch(/^pass /);
  });

  it("p=quarantine failure: stored with the quarantine header", async () => {
    const { authResults, headers } = await delivered(
      "quarantined",
      "x@evil.example",
      buildMessage({ from: "a@quarantine.example" }),
    );
    expect(authResults).toMatch(/dmarc=fail .*policy\.dmarc=quarantine/);
    expect(headers.has("X-Postern-Quarantine")).toBe(true);
  });

  it("p=none failure: stored, dmarc=fail", async () => {
    const { authResults } = await delivered("monitored", "x@evil.example", buildMessage({ from: "a@none.example" }));
    expect(authResults).toMatch(/dmarc=fail .*policy\.dmarc=none/);
  });

  it("a forged Authentication-Results with our authserv-id is gone from the stored file", async () => {
    const raw = buildMessage({
      from: "a@none.example",
      headers: [["Authentication-Results", "mx.test; dkim=pass header.d=none.example; dmarc=pass"]],
    });
    const { authResults, headers } = await delivered("forged", "x@evil.example", raw);
    expect(authResults).toMatch(/dmarc=fail/);
    expect(headers.getAll("Authentication-Results")).toHaveLength(1);
  });

  it("DNS that times out: dmarc=temperror, stored", async () => {
    const { authResults } = await delivered("slow", "x@evil.example", buildMessage({ from: "a@slow.example" }));
    expect(authResults).toMatch(/dmarc=temperror/);
  });

  it("p=reject failure: 550 5.7.1 at the end of DATA, nothing stored", async () => {
    const error = (await server
      .send({ from: "x@evil.example", to: "rejected@localhost", raw: fixture("rsa-header-tampered.eml") })
      .catch((e: unknown) => e)) as SendError;
    expect(error.responseCode).toBe(550);
    expect(error.response).toMatch(/^550 5\.7\.1 Rejected by the DMARC policy of signed\.example/);
    await expect(readdir(join(root, "localhost", "rejected", "new"))).rejects.toThrow(/ENOENT/);
  });
});
