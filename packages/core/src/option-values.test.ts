// Durations and network lists read as operators write them, and every wrong value gets the one
// message that names the notation.
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { IpNetworkList } from "./ip.ts";
import { duration, durationSchema, ipNetworks } from "./option-values.ts";
import { parseOptions } from "./options.ts";

function problem(schema: z.ZodType, value: unknown): string {
  try {
    parseOptions(z.strictObject({ key: schema }), { key: value }, "@postern/example");
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error("the value was accepted");
}

describe("duration", () => {
  it.each([
    [300_000, 300_000],
    [0, 0],
    ["500ms", 500],
    ["30s", 30_000],
    ["5m", 300_000],
    [" 2h ", 7_200_000],
    ["36d", 3_110_400_000],
    ["1.5h", 5_400_000],
    ["2S", 2_000],
  ])("%j → %i ms", (value, ms) => {
    expect(duration.parse(value)).toBe(ms);
  });

  it.each([["5"], ["5 minutes"], ["1w"], ["-1s"], [-1], [1.5], [Number.NaN], [Number.POSITIVE_INFINITY], [true]])(
    "%j is not a duration",
    (value) => {
      expect(problem(duration, value)).toBe(
        `@postern/example.key: expected a duration such as 300000, "5m" or "36d" (got ${JSON.stringify(value)})`,
      );
    },
  );

  it("takes a default in milliseconds", () => {
    expect(z.object({ timeout: duration.default(5_000) }).parse({})).toEqual({ timeout: 5_000 });
  });
});

describe("durationSchema('seconds')", () => {
  const seconds = durationSchema("seconds");

  it.each([
    [300, 300_000],
    [1.5, 1_500],
    ["5m", 300_000],
    ["90s", 90_000],
    ["250ms", 250],
  ])("%j → %i ms", (value, ms) => {
    expect(seconds.parse(value)).toBe(ms);
  });

  it("names seconds in its message", () => {
    expect(problem(seconds, -1)).toBe(
      '@postern/example.key: expected a duration such as 300 (seconds), "5m" or "36d" (got -1)',
    );
  });
});

describe("ipNetworks", () => {
  it("reads networks and single addresses into one list", () => {
    const list = ipNetworks.parse(["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]);
    expect(list).toBeInstanceOf(IpNetworkList);
    expect(list.find("192.0.2.9")?.text).toBe("192.0.2.0/24");
    expect(list.find("2001:db8::1")?.text).toBe("2001:db8::/32");
    expect(list.find("198.51.100.7")?.text).toBe("198.51.100.7/32");
    expect(list.find("203.0.113.1")).toBeUndefined();
  });

  it("names the entry that is not a network", () => {
    expect(problem(ipNetworks, ["192.0.2.0/24", "192.0.2.0/33"])).toBe(
      '@postern/example.key.1: expected a network such as "192.0.2.0/24", "2001:db8::/32" or one address (got "192.0.2.0/33")',
    );
    expect(problem(ipNetworks, [24])).toBe(
      '@postern/example.key.0: expected a network such as "192.0.2.0/24", "2001:db8::/32" or one address (got 24)',
    );
    expect(problem(ipNetworks, "192.0.2.0/24")).toBe(
      '@postern/example.key: expected a list of networks such as ["192.0.2.0/24"] (got "192.0.2.0/24")',
    );
  });
});
