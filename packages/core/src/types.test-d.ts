import { describe, expectTypeOf, it } from "vitest";
import {
  type AcceptVerdict,
  accept,
  defer,
  defineHookSet,
  discard,
  type EventChannel,
  eventKey,
  type HookContext,
  type HookReturn,
  type Plugin,
  Results,
  reject,
  resultKey,
  smtpHooks,
} from "./index.ts";

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

  it("a hook table must have an entry for every hook of its signatures", () => {
    interface TwoHooks {
      pick(value: number, context: HookContext): HookReturn<string>;
      seen(value: number, context: HookContext): void;
    }
    const pick = {
      combine: "first",
      when: "picking",
      problem: () => undefined,
      onError: () => "fallback",
      onTimeout: () => "fallback",
    } as const;
    // @ts-expect-error the "seen" entry is missing
    defineHookSet<TwoHooks>("two", { pick });
    const complete = defineHookSet<TwoHooks>("two", {
      pick,
      seen: {
        combine: "all",
        when: "seen",
        problem: () => undefined,
        onError: () => undefined,
        onTimeout: () => undefined,
      },
    });
    expectTypeOf(complete.name).toBeString();
    // The failure answer of a "first" hook has the hook's answer type.
    defineHookSet<TwoHooks>("two", {
      // @ts-expect-error a number is not what pick answers
      pick: { ...pick, onError: () => 42 },
      seen: {
        combine: "all",
        when: "seen",
        problem: () => undefined,
        onError: () => undefined,
        onTimeout: () => undefined,
      },
    });
    expectTypeOf(smtpHooks.table).toHaveProperty("close");
  });

  it("discard() answers data hooks only", () => {
    const ok = { name: "dropper", hooks: { data: () => discard("spam run") } } satisfies Plugin;
    expectTypeOf(ok.name).toBeString();
    const wrong = {
      name: "wrong",
      hooks: {
        // @ts-expect-error discard is not an answer of rcptTo
        rcptTo: () => discard("no"),
      },
    } satisfies Plugin;
    expectTypeOf(wrong.name).toBeString();
    expectTypeOf(defer("4.7.1", "later").kind).toEqualTypeOf<"defer">();
  });

  it("event keys carry their payload type", () => {
    const delivered = eventKey<{ queueId: string }>("test.delivered");
    const channel = {} as EventChannel;
    channel.on(delivered, (event) => {
      expectTypeOf(event.queueId).toBeString();
    });
    // @ts-expect-error the payload does not fit the key
    channel.emit(delivered, { queueId: 1 });
  });
});
