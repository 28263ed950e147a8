// Forwarding end to end, over real SMTP between Postern instances that each run the plugin and
// @postern/outbound, with one fake DNS zone:
//
//   origin.example (C)  ← the original sender's server
//   example.com (A)     ← forwards info@ to next.example with SRS (its SRS domain fwd.example.com)
//   next.example (B)    ← the next hop: checks SPF (@postern/spf, fail = reject); its bounce@
//                         forwards to a domain with a null MX, so B bounces — to A's SRS address
//
// A forwarded message's SRS sender passes SPF at B (the original sender would fail there), and a
// bounce B sends to the SRS address reaches the original sender at C through A.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Plugin } from "@postern/core";
import outbound, { type RouteContext } from "@postern/outbound";
import spf, { spfResult } from "@postern/spf";
import {
  type FakeDns,
  type MemoryQueue,
  memoryQueue,
  startFakeDns,
  startTestServer,
  type TestServer,
} from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import recipients, { createSrs } from "./index.ts";
import { rcpt, send } from "./test-smtp.ts";

const secrets = ["forwarding-e2e-secret"];
const srs = createSrs({ domain: "fwd.example.com", secrets });

let dns: FakeDns;
const folders: string[] = [];
const servers: TestServer[] = [];
const ports: Record<"a" | "b" | "c", number> = { a: 0, b: 0, c: 0 };
let a: { server: TestServer; local: MemoryQueue };
let b: { server: TestServer; local: MemoryQueue };
let c: { server: TestServer; local: MemoryQueue };

/** Outbound with an fs queue of its own, sending each domain to the instance that serves it. */
async function delivery(nextHops: Record<string, keyof typeof ports>): Promise<Plugin> {
  const dir = await mkdtemp(join(tmpdir(), "postern-forwarding-"));
  folders.push(dir);
  return outbound({
    queue: { type: "fs", dir },
    queueRoutes: ["relay", "forward"],
    tls: { level: "none" },
    mtaSts: { enabled: false },
    hooks: {
      route: ({ domain }: RouteContext) => {
        const hop = nextHops[domain];
        return hop ? { type: "relay", host: "127.0.0.1", port: ports[hop], tls: "none" } : undefined;
      },
    },
  });
}

async function instance(name: keyof typeof ports, hostname: string, plugins: Plugin[]) {
  const local = memoryQueue({ routes: ["local"] });
  const server = await startTestServer({ plugins: [...plugins, local.plugin], dns, hostname });
  servers.push(server);
  ports[name] = server.port;
  return { server, local };
}

beforeAll(async () => {
  dns = await startFakeDns({
    "fwd.example.com": { TXT: ["v=spf1 ip4:127.0.0.1 -all"] },
    "origin.example": { TXT: ["v=spf1 ip4:192.0.2.0/24 -all"] },
    "nullmx.example": { MX: [{ priority: 0, exchange: "." }] },
  });
  c = await instance("c", "mx.origin.example", [recipients({ domains: ["origin.example"] })]);
  b = await instance("b", "mx.next.example", [
    spf({ fail: "reject" }),
    recipients({
      domains: ["next.example"],
      mailboxes: ["bob@next.example"],
      aliases: { map: { aliases: { "bounce@next.example": "lost@nullmx.example" } } },
    }),
    await delivery({ "fwd.example.com": "a" }),
  ]);
  a = await instance("a", "mx.example.com", [
    recipients({
      domains: ["example.com"],
      srs: { domain: "fwd.example.com", secrets },
      aliases: {
        map: {
          aliases: {
            "info@example.com": "bob@next.example",
            "gone@example.com": "bounce@next.example",
            "nowhere@example.com": "nobody@next.example",
          },
        },
      },
    }),
    await delivery({ "next.example": "b", "origin.example": "c" }),
  ]);
}, 30_000);

afterAll(async () => {
  for (const server of servers.reverse()) await server.stop();
  await dns?.close();
  for (const dir of folders) await rm(dir, { recursive: true, force: true });
});

describe("forwarding with SRS to a next hop that checks SPF", () => {
  it("forwards with the SRS sender, which passes SPF at the next hop; the original sender would fail", async () => {
    const arrived = b.local.next(20_000);
    expect(await send(a.server, ["info@example.com"], "sender@origin.example")).toMatch(/^250/);
    const message = await arrived;
    expect(message.recipients).toEqual(["bob@next.example"]);
    expect(message.from).toBe(srs.forward("sender@origin.example"));
    expect(message.from).toMatch(/^SRS0=[^=]{4}=[A-Z2-7]{2}=origin\.example=sender@fwd\.example\.com$/);
    expect(message.transaction.results.get(spfResult)).toMatchObject({ result: "pass", domain: "fwd.example.com" });
    expect(message.bytes.toString()).toMatch(/^Received-SPF: pass /m);

    // Negative control: the same hop refuses the unrewritten sender from this address (SPF fail).
    const client = await b.server.connect();
    try {
      await client.read();
      await client.command("EHLO mx.example.com");
      const reply = await client.command("MAIL FROM:<sender@origin.example>");
      expect(`${reply.code} ${reply.enhanced}`).toBe("550 5.7.23");
    } finally {
      client.close();
    }
  });

  it("reverses a bounce the next hop sends to the SRS address and delivers it to the original sender", async () => {
    const report = c.local.next(30_000);
    expect(await send(a.server, ["gone@example.com"], "sender@origin.example")).toMatch(/^250/);
    const bounce = await report;
    expect(bounce.from).toBe("");
    expect(bounce.recipients).toEqual(["sender@origin.example"]);
    const text = bounce.bytes.toString();
    expect(text).toMatch(/^Content-Type: multipart\/report; report-type=delivery-status/im);
    expect(text).toMatch(/^Reporting-MTA: dns; ?mx\.next\.example/im);
    expect(text).toMatch(/^Final-Recipient: rfc822; ?lost@nullmx\.example/im);
    // ORCPT travelled with the forward (RFC 3461 §4.2): the report names what the sender wrote to.
    expect(text).toMatch(/^Original-Recipient: rfc822; ?gone@example\.com/im);
    // A forged SRS address is no way into the forwarder: refused at RCPT.
    const forged = srs.forward("sender@origin.example").replace(/^SRS0=[^=]{4}=/, "SRS0=AAAA=");
    expect(await rcpt(a.server, [forged], { from: "" })).toEqual(["550 5.1.1"]);
  });

  // Outbound hands a report declined by core's submit() to the addresses the rcptTo hooks resolved
  // (the original sender), not to the SRS address itself, which would loop back to us.
  it("delivers a report about a forward it could not deliver to the original sender", async () => {
    const report = c.local.next(20_000);
    expect(await send(a.server, ["nowhere@example.com"], "sender@origin.example")).toMatch(/^250/);
    const bounce = await report;
    expect(bounce.recipients).toEqual(["sender@origin.example"]);
    expect(bounce.bytes.toString()).toMatch(/^Final-Recipient: rfc822; ?nobody@next\.example/im);
  });
});
