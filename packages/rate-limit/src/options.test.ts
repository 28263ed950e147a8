// Options in human units, and the one-line ConfigError for each kind of mistake.
import { ConfigError } from "@postern/core";
import { describe, expect, it } from "vitest";
import rateLimit, { type RateLimitOptions } from "./index.ts";
import { rateLimitOptionsSchema } from "./options.ts";
import { parseByteRate, parseRate } from "./units.ts";

/** The tarpit a rule ends up with when the plugin's `tarpit` is `value`. */
function tarpitOf(value: string | number): number {
  return rateLimitOptionsSchema.parse({ limits: [{ kind: "messages", limit: "1/1h" }], tarpit: value }).rules[0]!
    .tarpitMs;
}

describe("human units", () => {
  it("parses rates, byte rates and delays", () => {
    expect(parseRate("100/1h")).toEqual({ count: 100, windowSeconds: 3600 });
    expect(parseRate("5/1m")).toEqual({ count: 5, windowSeconds: 60 });
    expect(parseRate(" 10 / 30s ")).toEqual({ count: 10, windowSeconds: 30 });
    expect(parseRate("1000/day")).toEqual({ count: 1000, windowSeconds: 86_400 });
    expect(parseRate("3/h")).toEqual({ count: 3, windowSeconds: 3600 });
    expect(parseByteRate("500MB/1d")).toEqual({ count: 500 * 1024 * 1024, windowSeconds: 86_400 });
    expect(parseByteRate("1048576/1h")).toEqual({ count: 1_048_576, windowSeconds: 3600 });
    expect(tarpitOf("2s")).toBe(2000);
    expect(tarpitOf("500ms")).toBe(500);
    expect(tarpitOf(750)).toBe(750);
    for (const bad of ["100", "100/", "0/1h", "100/0m", "100/1w", "100 per hour", "-1/1h", "1.5/1h"]) {
      expect(parseRate(bad), bad).toBeUndefined();
    }
    for (const bad of ["500XB/1d", "500MB", "/1d", "0/1d"]) expect(parseByteRate(bad), bad).toBeUndefined();
  });

  it("resolves rules with derived names and defaults", () => {
    const resolved = rateLimitOptionsSchema.parse({
      limits: [
        { kind: "messages", key: ["user", "recipientDomain"], limit: "500/1d" },
        { kind: "concurrent", limit: "10" },
        { kind: "bytes", key: "sender", limit: "1GB/1d", tarpit: "1s" },
      ],
      tarpit: 250,
    });
    expect(
      resolved.rules.map(({ name, count, windowSeconds, tarpitMs }) => ({ name, count, windowSeconds, tarpitMs })),
    ).toEqual([
      { name: "messages-user+recipientDomain-86400s", count: 500, windowSeconds: 86_400, tarpitMs: 250 },
      { name: "concurrent-ip", count: 10, windowSeconds: undefined, tarpitMs: 250 },
      { name: "bytes-sender-86400s", count: 1024 ** 3, windowSeconds: 86_400, tarpitMs: 1000 },
    ]);
    expect(resolved.prefixes).toEqual({ ipv4: 32, ipv6: 64 });
    expect(resolved.redis).toBeUndefined();
  });
});

describe("option errors are one line naming the key", () => {
  const cases: [string, unknown, string][] = [
    [
      "a rate that is not one",
      { limits: [{ kind: "messages", limit: "100 per hour" }] },
      '@postern/rate-limit: limits.0.limit: expected a rate such as "100/1h", "5/1m" or "1000/1d" (got "100 per hour")',
    ],
    [
      "a rate where a count is expected",
      {
        limits: [
          { kind: "messages", limit: "1/1m" },
          { kind: "concurrent", limit: "10/1h" },
        ],
      },
      '@postern/rate-limit: limits.1.limit: expected a whole number of connections at once, such as 10 (got "10/1h")',
    ],
    [
      "a byte rate without a window",
      { limits: [{ kind: "bytes", limit: "500MB" }] },
      '@postern/rate-limit: limits.0.limit: expected bytes per window such as "500MB/1d" or "10MB/1h" (got "500MB")',
    ],
    [
      "an unknown kind",
      { limits: [{ kind: "mesages", limit: "1/1h" }] },
      '@postern/rate-limit: limits.0.kind: expected a kind: concurrent, connections, authFailures, messages, recipients, recipientsPerMessage, bytes (got "mesages")',
    ],
    [
      "a key not known when the kind is counted",
      { limits: [{ kind: "concurrent", key: "helo", limit: 5 }] },
      '@postern/rate-limit: limits.0.key: expected a key that concurrent limits can count by: ip, network (got "helo")',
    ],
    [
      "the network key without networks",
      { limits: [{ kind: "connections", key: "network", limit: "10/1m" }] },
      '@postern/rate-limit: limits.0.networks: expected the CIDR ranges to count by, since the key is "network" (got nothing)',
    ],
    [
      "a bad CIDR range",
      { limits: [{ kind: "messages", limit: "1/1h", networks: ["10.0.0.0/33"] }] },
      '@postern/rate-limit: limits.0.networks.0: expected an IP address or CIDR range such as "192.0.2.0/24" or "2001:db8::/32" (got "10.0.0.0/33")',
    ],
    [
      "two rules sharing a counter",
      {
        limits: [
          { kind: "messages", limit: "1/1h" },
          { kind: "messages", limit: "5/1h", networks: ["10.0.0.0/8"] },
        ],
      },
      '@postern/rate-limit: limits.1.name: expected a unique name: limits.0 already counts as "messages-ip-3600s"; give one of them a name (got nothing)',
    ],
    [
      "an IPv6 prefix too long",
      { limits: [{ kind: "messages", limit: "1/1h" }], ipv6Prefix: 129 },
      "@postern/rate-limit: ipv6Prefix: expected a prefix length 1–128 (got 129)",
    ],
    [
      "a Redis URL that is not one",
      { limits: [{ kind: "messages", limit: "1/1h" }], redis: "http://127.0.0.1:6379" },
      '@postern/rate-limit: redis: expected a Redis URL such as "redis://127.0.0.1:6379" (got "http://127.0.0.1:6379")',
    ],
    [
      "an unknown outage policy",
      { limits: [{ kind: "messages", limit: "1/1h" }], redis: { onError: "maybe" } },
      '@postern/rate-limit: redis.onError: expected "allow" or "defer" (got "maybe")',
    ],
    [
      "a Redis timeout that is too long",
      { limits: [{ kind: "messages", limit: "1/1h" }], redis: { url: "redis://127.0.0.1:6379", timeoutMs: 60_000 } },
      "@postern/rate-limit: redis.timeoutMs: expected milliseconds 10–30000 (got 60000)",
    ],
    [
      "a tarpit that is not a delay",
      { limits: [{ kind: "messages", limit: "1/1h" }], tarpit: "forever" },
      '@postern/rate-limit: tarpit: expected a delay up to 1 minute such as "2s", "500ms" or 2000 (got "forever")',
    ],
    ["no limits", { limits: [] }, "@postern/rate-limit: limits: expected at least one limit (got [])"],
  ];

  it.each(cases)("%s", (_name, options, message) => {
    let error: unknown;
    try {
      rateLimit(options as RateLimitOptions);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(ConfigError);
    // The plugin name, then the key and what was expected there.
    const text = (error as ConfigError).message;
    expect(text.startsWith("@postern/rate-limit")).toBe(true);
    expect(text.slice("@postern/rate-limit".length + 1)).toBe(message.slice("@postern/rate-limit: ".length));
    expect((error as ConfigError).message).not.toContain("\n");
  });
});
