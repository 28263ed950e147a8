import { ConfigError } from "@postern/core";
import { describe, expect, it } from "vitest";
import tlsRpt from "./index.ts";

describe("tlsRpt() options", () => {
  it("names the key and what was expected, in one line", () => {
    expect(() => tlsRpt({ sendHourUtc: 24 })).toThrow(ConfigError);
    expect(() => tlsRpt({ sendHourUtc: 24 })).toThrow(/^@postern\/tls-rpt\.sendHourUtc: expected an hour 0–23/);
    expect(() => tlsRpt({ from: "not an address" })).toThrow(/from: expected an address/);
    expect(() => tlsRpt({ store: { type: "redis" } as never })).toThrow(
      /store\.type: expected a store with type "postgres", "file" or "custom"/,
    );
    expect(() => tlsRpt({ flushInterval: "soon" })).toThrow(/flushInterval: expected a duration/);
  });

  it("takes a valid configuration", () => {
    const plugin = tlsRpt({ store: { type: "file", dir: "/tmp/x" }, https: { timeout: "5s" }, sendHourUtc: 3 });
    expect(plugin.name).toBe("@postern/tls-rpt");
  });
});
