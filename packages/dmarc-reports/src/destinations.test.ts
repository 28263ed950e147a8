// Which rua destinations a report may go to: the record's URIs, the size suffix, destinations in
// the policy domain's Organizational Domain, and external ones verified by _report._dmarc (with
// the override the destination's owner may publish). DNS from the test kit's fake zone.
import { createResolver, type DnsResolver } from "@postern/core";
import { type FakeDns, startFakeDns } from "@postern/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { policyRecord, verifiedDestinations } from "./destinations.ts";
import { parseRua, publishedPolicy } from "./policy-record.ts";

let dns: FakeDns;
let resolver: DnsResolver;

beforeAll(async () => {
  dns = await startFakeDns({
    "_dmarc.shop.example": { TXT: ["v=DMARC1; p=quarantine; t=y; fo=1; aspf=s"] },
    "_dmarc.twice.example": { TXT: ["v=DMARC1; p=none", "v=DMARC1; p=reject"] },
    "_dmarc.dns-down.example": "SERVFAIL",
    // Takes reports for shop.example, but wants them at another mailbox of the same host.
    "shop.example._report._dmarc.vendor.example": {
      TXT: ["v=DMARC1; rua=mailto:shop-inbox@vendor.example!50k"],
    },
    // Tries to send shop.example's reports to a third party: neither URI may be used.
    "shop.example._report._dmarc.relay.example": { TXT: ["v=DMARC1; rua=mailto:victim@elsewhere.example"] },
    // Takes the reports as they are addressed (a bare v=DMARC1).
    "shop.example._report._dmarc.anyone.example": { TXT: ["v=DMARC1;"] },
  });
  resolver = createResolver({ servers: dns.servers, timeoutMs: 2000 });
});
afterAll(() => dns.close());

describe("report destinations", () => {
  it("reads rua URIs with their size limits", () => {
    expect(
      parseRua(
        " mailto:a@x.example!10m , mailto:b%2Bdmarc@x.example?subject=hi, https://r.example/, mailto:c@x.example!512",
      ),
    ).toEqual([
      { uri: "mailto:a@x.example", address: "a@x.example", maxBytes: 10 * 1024 * 1024 },
      { uri: "mailto:b%2Bdmarc@x.example?subject=hi", address: "b+dmarc@x.example", maxBytes: undefined },
      { uri: "https://r.example/", address: undefined, maxBytes: undefined },
      { uri: "mailto:c@x.example", address: "c@x.example", maxBytes: 512 },
    ]);
    expect(parseRua(undefined)).toEqual([]);
  });

  it("reports the policy as published, defaults filled in", async () => {
    const record = await policyRecord(resolver, "shop.example");
    expect(publishedPolicy("shop.example", record!)).toEqual({
      domain: "shop.example",
      p: "quarantine",
      sp: undefined,
      np: undefined,
      adkim: "r",
      aspf: "s",
      testing: "y",
      fo: "1",
    });
    // Two records are no record; a DNS failure is not "no record".
    expect(await policyRecord(resolver, "twice.example")).toBeUndefined();
    expect(await policyRecord(resolver, "none.example")).toBeUndefined();
    await expect(policyRecord(resolver, "dns-down.example")).rejects.toThrow();
  });

  it("keeps the domain's own mailboxes, verifies external ones and takes an owner's override", async () => {
    const { destinations, skipped } = await verifiedDestinations(
      resolver,
      "shop.example",
      "v=DMARC1; p=none; rua=mailto:dmarc@reports.shop.example,mailto:shop@vendor.example,mailto:x@relay.example,mailto:y@stranger.example,mailto:z@anyone.example!1m,ftp://files.example/",
    );
    expect(destinations).toEqual([
      {
        uri: "mailto:dmarc@reports.shop.example",
        address: "dmarc@reports.shop.example",
        maxBytes: undefined,
        external: false,
      },
      {
        uri: "mailto:shop-inbox@vendor.example",
        address: "shop-inbox@vendor.example",
        maxBytes: 50 * 1024,
        external: true,
      },
      { uri: "mailto:z@anyone.example", address: "z@anyone.example", maxBytes: 1024 * 1024, external: true },
    ]);
    expect(skipped.map((entry) => [entry.uri, entry.reason])).toEqual([
      ["mailto:x@relay.example", "override-elsewhere"],
      ["mailto:y@stranger.example", "not-authorised"],
      ["ftp://files.example/", "unsupported-scheme"],
    ]);
    expect(skipped[1]!.detail).toBe("no v=DMARC1 record at shop.example._report._dmarc.stranger.example");
  });
});
