// Option mistakes are one line naming the key and what was expected there; durations and retry
// texts read as an operator writes and a sender's postmaster reads them.
import { ConfigError } from "@postern/core";
import { describe, expect, it } from "vitest";
import { humanDuration } from "./duration.ts";
import greylist, { type GreylistOptions, memoryStore } from "./index.ts";
import { greylistOptionsSchema } from "./options.ts";

function problem(options: unknown): string {
  try {
    greylist(options as GreylistOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the options were accepted");
}

describe("greylist() options", () => {
  it.each([
    [
      { delay: "5 minutes" },
      '@postern/greylist.delay: expected a duration such as 300 (seconds), "5m" or "36d" (got "5 minutes")',
    ],
    [
      { passedFor: -1 },
      '@postern/greylist.passedFor: expected a duration such as 300 (seconds), "5m" or "36d" (got -1)',
    ],
    [
      { delay: "1h", retryWindow: "30m" },
      '@postern/greylist.retryWindow: expected a retry window longer than the delay (a retry could never pass) (got "30m")',
    ],
    [{ autoAllowAfter: 2.5 }, "@postern/greylist.autoAllowAfter: expected a whole number of passed triplets (got 2.5)"],
    [{ network: { ipv4: 33 } }, "@postern/greylist.network.ipv4: expected a prefix length 0–32 (got 33)"],
    [{ network: { ipv6: "64" } }, '@postern/greylist.network.ipv6: expected a prefix length 0–128 (got "64")'],
    [
      { allow: { networks: ["192.0.2.0/24", "192.0.2.0/33"] } },
      '@postern/greylist.allow.networks.1: expected a network such as "192.0.2.0/24", "2001:db8::/32" or one address (got "192.0.2.0/33")',
    ],
    [
      { allow: { senderDomains: ["not a domain"] } },
      '@postern/greylist.allow.senderDomains.0: expected a domain such as "example.com" (got "not a domain")',
    ],
    [
      { allow: { clientNames: ["mail_[0-9].example"] } },
      '@postern/greylist.allow.clientNames.0: expected a host name pattern such as "*.mail.example.com" (got "mail_[0-9].example")',
    ],
    [
      { allow: { domains: ["example.com"] } },
      "@postern/greylist.allow.domains: unknown setting; check its spelling and where it sits",
    ],
    [{ stage: "connect" }, '@postern/greylist.stage: expected "rcpt" or "data" (got "connect")'],
    [
      { redis: "127.0.0.1:6379" },
      '@postern/greylist.redis: expected a Redis URL such as "redis://127.0.0.1:6379" (got "127.0.0.1:6379")',
    ],
    [{ onStoreError: "reject" }, '@postern/greylist.onStoreError: expected "accept" or "defer" (got "reject")'],
    [
      { redis: "redis://127.0.0.1:6379", store: memoryStore() },
      '@postern/greylist.store: expected either redis or store, not both (got {"kind":"memory","where":"memory"})',
    ],
  ])("%j → %s", (options, message) => {
    expect(problem(options)).toBe(message);
  });

  it("takes the documented forms", () => {
    expect(() =>
      greylist({
        delay: 300,
        retryWindow: "2d",
        passedFor: "36d",
        autoAllowAfter: 0,
        network: { ipv4: 32 },
        allow: { networks: ["2001:db8::/32"], senderDomains: ["*.example.com"], clientNames: ["*.google.com"] },
        stage: "data",
        redis: { url: "rediss://user:secret@redis.internal:6380/2", keyPrefix: "mx1:greylist", timeoutMs: 250 },
        onStoreError: "defer",
      }),
    ).not.toThrow();
  });
});

describe("durations", () => {
  it.each([
    ["5m", 300_000],
    ["90s", 90_000],
    [" 2h ", 7_200_000],
    ["36d", 3_110_400_000],
    ["1.5h", 5_400_000],
    [300, 300_000],
    ["5", undefined],
    ["5 minutes", undefined],
    [-1, undefined],
    [Number.NaN, undefined],
  ])("%j → %s ms", (value, ms) => {
    const parsed = greylistOptionsSchema.safeParse({ passedFor: value });
    expect(parsed.success ? parsed.data.passedFor : undefined).toBe(ms);
  });

  it.each([
    [0, "1 second"],
    [1500, "2 seconds"],
    [119_000, "119 seconds"],
    [300_000, "5 minutes"],
    [299_001, "5 minutes"],
    [7_200_000, "2 hours"],
  ])("a wait of %i ms reads %s", (ms, text) => {
    expect(humanDuration(ms)).toBe(text);
  });
});
