import { describe, expectTypeOf, it } from "vitest";
import { type AcceptVerdict, accept, type Plugin, Results, reject, resultKey } from "./index.ts";

describe("public types", () => {
  it("result keys carry their value type", () => {
    const spf = resultKey<{ result: "pass" | "fail" }>("spf");
    const results = new Results();
    results.set(spf, { result: "pass" });
    expectTypeOf(results.get(spf)).toEqualTypeOf<{ result: "pass" | "fail" } | undefined>();
    // @ts-expect-error a value of the wrong type does not fit the key
    results.set(spf, { result: "maybe" });
  });

  it("hooks return verdicts only", () => {
    const plugin = {
      name: "typed",
      hooks: {
        rcptTo: () => accept({ route: "local" }),
        mailFrom: { handler: async () => reject("5.7.1", "no"), order: "pre", timeoutMs: 100 },
      },
    } satisfies Plugin;
    expectTypeOf(plugin.hooks.rcptTo).returns.toEqualTypeOf<AcceptVerdict>();
    const wrong = {
      name: "wrong",
      hooks: {
        // @ts-expect-error a string is not a verdict
        helo: () => "250 ok",
      },
    } satisfies Plugin;
    expectTypeOf(wrong.name).toBeString();
  });

  it("verdict helpers only take enhanced status codes", () => {
    // @ts-expect-error "550" is a basic code, not an enhanced status
    reject("550", "no");
  });
});
