import { describe, expect, it } from "vitest";
import { addressKey, normalizeDomain, parseAddress, splitSubaddress } from "./address.ts";

describe("address primitives", () => {
  it("normalizes domains: lower-case ASCII, IDNA, no trailing dot; refuses IPs and bad labels", () => {
    expect(normalizeDomain("Example.COM.")).toBe("example.com");
    expect(normalizeDomain("bücher.example")).toBe("xn--bcher-kva.example");
    expect(normalizeDomain("192.0.2.1")).toBeUndefined();
    expect(normalizeDomain("bad_label.example")).toBeUndefined();
    expect(normalizeDomain("10.0.0.300")).toBeUndefined();
  });

  it("answers a name already lower-case ASCII as the full conversion does (its fast path)", () => {
    // Upper-cased, each name takes the IDNA path; as given, the lower-case ones take the fast one.
    const names = [
      "example.com",
      "mx1.mail-relay.example.org",
      "localhost",
      "a.b.c.d.e.f",
      "1example.com",
      "example.123",
      "10.0.0.1",
      "xn--bcher-kva.example",
      "xn--invalid-.example",
      "-bad.example",
      "bad-.example",
      "a..b",
      "a.b.",
      `${"a".repeat(64)}.example`,
      `${"a".repeat(63)}.example`,
      Array.from({ length: 40 }, () => "abcdef").join("."),
    ];
    for (const name of names) expect(normalizeDomain(name), name).toBe(normalizeDomain(name.toUpperCase()));
    expect(normalizeDomain("example.123")).toBeUndefined();
    expect(normalizeDomain(`${"a".repeat(63)}.example`)).toBe(`${"a".repeat(63)}.example`);
  });

  it("splits addresses at the last @ and recognises postmaster and address literals", () => {
    expect(parseAddress("Postmaster")).toEqual({ kind: "postmaster" });
    expect(parseAddress('"a@b"@Example.org')).toEqual({ kind: "mailbox", localPart: '"a@b"', domain: "example.org" });
    expect(parseAddress("user@[192.0.2.1]")).toEqual({
      kind: "address-literal",
      localPart: "user",
      literal: "192.0.2.1",
    });
    expect(parseAddress("@example.org")).toEqual({ kind: "malformed" });
  });

  it("keys addresses case-insensitively, IDNs in one spelling, whatever path computes the key", () => {
    const same = [
      ["Alice@EXAMPLE.com", "alice@example.com"],
      ["alice@example.com.", "alice@example.com"],
      ["alice@bücher.example", "alice@xn--bcher-kva.example"],
      ["ALICE@XN--BCHER-KVA.example", "alice@xn--bcher-kva.example"],
      ["User@[192.0.2.1]", "user@[192.0.2.1]"],
      ["not an address", "not an address"],
      ["a@bad_label.example", "a@bad_label.example"],
    ];
    for (const [address, key] of same) expect(addressKey(address!), address).toBe(key);
    expect(addressKey("postmaster", "MX.example.org")).toBe("postmaster@mx.example.org");
  });

  it("splits a subaddress at the first of several delimiter characters", () => {
    expect(splitSubaddress("alice+news", "+")).toEqual({ base: "alice", detail: "news" });
    expect(splitSubaddress("alice-news+x", "+-")).toEqual({ base: "alice", detail: "news+x" });
    expect(splitSubaddress("+alice", "+")).toEqual({ base: "+alice", detail: undefined });
    expect(splitSubaddress("alice", "")).toEqual({ base: "alice", detail: undefined });
  });
});
