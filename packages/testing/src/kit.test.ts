import { promises as dnsPromises } from "node:dns";
import { afterEach, describe, expect, it } from "vitest";
import { buildMessage, bulkyText, type FakeDns, repeatedTopLevelKeys, reverseName, startFakeDns } from "./index.ts";

let dns: FakeDns | undefined;
afterEach(async () => {
  await dns?.close();
  dns = undefined;
});

describe("repeatedTopLevelKeys", () => {
  it("finds a key given twice at the top level only", () => {
    expect(repeatedTopLevelKeys('{"name":"postern","plugin":"x","name":"file"}')).toEqual(["name"]);
    expect(repeatedTopLevelKeys('{"name":"postern","err":{"name":"Error"},"list":[{"name":1}]}')).toEqual([]);
    expect(repeatedTopLevelKeys('{"msg":"a \\"name\\": b","name":"x"}')).toEqual([]);
    expect(repeatedTopLevelKeys('{"a\\"b":1,"a\\"b":2}')).toEqual(['a"b']);
  });
});

describe("message builder", () => {
  it("writes CRLF line ends and a header block", () => {
    const raw = buildMessage({ from: "a@b.test", to: ["c@d.test", "e@f.test"], subject: "hi", text: "one\ntwo\n" });
    const text = raw.toString();
    expect(text).toMatch(/^From: <a@b\.test>\r\nTo: c@d\.test, e@f\.test\r\nSubject: hi\r\n/);
    expect(text.endsWith("\r\n\r\none\r\ntwo\r\n")).toBe(true);
    expect(text).not.toMatch(/[^\r]\n/);
  });

  it("makes bulky text of about the size asked", () => {
    const text = bulkyText(10_000);
    expect(text.length).toBeGreaterThanOrEqual(10_000);
    expect(text.length).toBeLessThan(10_100);
  });
});

describe("fake DNS zone", () => {
  it("names reverse lookups for IPv4 and IPv6", () => {
    expect(reverseName("192.0.2.1")).toBe("1.2.0.192.in-addr.arpa");
    expect(reverseName("2001:db8::1")).toBe(`1${".0".repeat(23)}.8.b.d.0.1.0.0.2.ip6.arpa`);
  });

  it("answers over UDP, falls back to TCP for large answers, and can be changed while running", async () => {
    dns = await startFakeDns({
      "big.test": { TXT: Array.from({ length: 12 }, (_, i) => `record-${i}-${"x".repeat(200)}`) },
    });
    const resolver = new dnsPromises.Resolver({ timeout: 1000, tries: 1 });
    resolver.setServers(dns.servers);
    const records = await resolver.resolveTxt("big.test");
    expect(records).toHaveLength(12);
    // Once over UDP (truncated), once over TCP.
    expect(dns.queries.get("TXT big.test")).toBe(2);
    dns.set("big.test", { A: ["192.0.2.9"] });
    expect(await resolver.resolve4("big.test")).toEqual(["192.0.2.9"]);
    dns.set("big.test", "NXDOMAIN");
    await expect(resolver.resolve4("big.test")).rejects.toMatchObject({ code: "ENOTFOUND" });
  });
});
