import { describe, expect, it } from "vitest";
import { z } from "zod";
import { ConfigError } from "./errors.ts";
import { parseOptions } from "./options.ts";

const schema = z.strictObject({
  fail: z.enum(["reject", "defer"]).default("reject"),
  nested: z.strictObject({ n: z.number() }).optional(),
});

function errorOf(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error("expected a ConfigError");
}

describe("parseOptions", () => {
  it("names the plugin, the key and what was expected in one line", () => {
    const error = errorOf(() => parseOptions(schema, { fail: "nope" }, "@postern/spf"));
    expect(error.message).toMatch(/^@postern\/spf\.fail: .*"reject".*"defer".* \(got "nope"\)$/);
    expect(error.message).not.toContain("\n");
    expect(error.plugin).toBe("@postern/spf");
  });

  it("names an unknown key rather than its parent", () => {
    const error = errorOf(() => parseOptions(schema, { nested: { n: 1, m: 2 } }, "@postern/x"));
    expect(error.key).toBe("@postern/x.nested.m");
    expect(error.expected).toMatch(/unknown setting/);
  });

  it("relocates a plugin's error under its config entry without repeating the plugin name", () => {
    const error = errorOf(() => parseOptions(schema, { fail: 3 }, "@postern/spf"));
    const located = error.inFile("postern.yaml", "plugins.1.options");
    expect(located.message).toMatch(/^postern\.yaml: plugins\.1\.options\.fail: /);
    expect(located.plugin).toBe("@postern/spf");
    const whole = errorOf(() => parseOptions(schema, "not an object", "@postern/spf")).inFile(
      "p.yaml",
      "plugins.0.options",
    );
    expect(whole.key).toBe("plugins.0.options");
  });
});
