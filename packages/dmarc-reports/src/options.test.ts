import { ConfigError } from "@postern/core";
import { describe, expect, it } from "vitest";
import dmarcReports from "./index.ts";

describe("dmarcReports() options", () => {
  it("names the key and what was expected, in one line", () => {
    expect(() => dmarcReports({ sendHourUtc: -1 })).toThrow(ConfigError);
    expect(() => dmarcReports({ sendHourUtc: -1 })).toThrow(
      /^@postern\/dmarc-reports\.sendHourUtc: expected an hour 0–23/,
    );
    expect(() => dmarcReports({ email: "postmaster" })).toThrow(/^@postern\/dmarc-reports\.email: expected an address/);
    expect(() => dmarcReports({ store: { type: "sqlite" } as never })).toThrow(
      /store\.type: expected a store with type "postgres", "file" or "custom"/,
    );
    expect(() => dmarcReports({ xmlNamespace: "yes" as never })).toThrow(/xmlNamespace: expected true or false/);
    expect(() => dmarcReports({ retentionDays: 0 })).toThrow(/retentionDays: expected a number of days 1–366/);
    expect(() => dmarcReports({ sendHour: 1 } as never)).toThrow(/sendHour: unknown setting/);
  });

  it("takes a valid configuration", () => {
    const plugin = dmarcReports({ store: { type: "postgres", schema: "mail" }, sendHourUtc: 4, flushInterval: "30s" });
    expect(plugin.name).toBe("@postern/dmarc-reports");
  });
});
