import { createResolver } from "@postern/core";
import { startFakeDns } from "@postern/testing";
import { describe, expect, it } from "vitest";
import { parseTlsRptRecord, reportDestinations } from "./destinations.ts";

describe("the _smtp._tls record (RFC 8460 §3)", () => {
  it("reads mailto and https destinations, with %-escapes and ?headers of mailto", () => {
    expect(
      parseTlsRptRecord("v=TLSRPTv1; rua=mailto:tls%2Brpt@example.com?subject=x, https://reports.example.com/v1"),
    ).toEqual([
      { kind: "mailto", address: "tls+rpt@example.com" },
      { kind: "https", url: "https://reports.example.com/v1" },
    ]);
  });

  it("reads DMARC's size limits on destinations (!10m) and keeps them out of the address", () => {
    expect(
      parseTlsRptRecord(
        "v=TLSRPTv1; rua=mailto:big@example.com!10m,mailto:small@example.com!512,https://r.example.com/v1!2k",
      ),
    ).toEqual([
      { kind: "mailto", address: "big@example.com", maxBytes: 10 * 2 ** 20 },
      { kind: "mailto", address: "small@example.com", maxBytes: 512 },
      { kind: "https", url: "https://r.example.com/v1", maxBytes: 2048 },
    ]);
    // An encoded "!" is part of the address, not a limit.
    expect(parseTlsRptRecord("v=TLSRPTv1; rua=mailto:a%21b@example.com")).toEqual([
      { kind: "mailto", address: "a!b@example.com" },
    ]);
  });

  it("skips schemes it does not send to and refuses a record of another version", () => {
    expect(parseTlsRptRecord("v=TLSRPTv1;rua=http://plain.example.com/,ftp://x")).toEqual([]);
    expect(parseTlsRptRecord("v=TLSRPTv2; rua=mailto:a@example.com")).toBeUndefined();
    expect(parseTlsRptRecord("v=TLSRPTv1; ruf=mailto:a@example.com")).toBeUndefined();
  });

  it("looks the record up, joins split strings, and takes no reports from a domain with two records", async () => {
    const dns = await startFakeDns({
      "_smtp._tls.one.test": { TXT: [["v=TLSRPTv1; rua=mailto:", "rpt@one.test"], "unrelated"] },
      "_smtp._tls.two.test": { TXT: ["v=TLSRPTv1; rua=mailto:a@two.test", "v=TLSRPTv1; rua=mailto:b@two.test"] },
    });
    try {
      const resolver = createResolver({ servers: dns.servers });
      expect(await reportDestinations(resolver, "one.test")).toEqual([{ kind: "mailto", address: "rpt@one.test" }]);
      expect(await reportDestinations(resolver, "two.test")).toEqual([]);
      expect(await reportDestinations(resolver, "none.test")).toEqual([]);
    } finally {
      await dns.close();
    }
  });
});
