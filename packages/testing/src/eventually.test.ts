import { describe, expect, it } from "vitest";
import { eventually, isReady } from "./eventually.ts";

describe("eventually and isReady", () => {
  it("resolves once the condition holds, and rejects when it never does", async () => {
    let calls = 0;
    await eventually(async () => ++calls === 3);
    expect(calls).toBe(3);
    await expect(eventually(async () => false, 250)).rejects.toThrow("condition still false after 250 ms");
  });

  it("turns ready() into true or false", async () => {
    expect(await isReady({ ready: async () => undefined })).toBe(true);
    expect(await isReady({ ready: async () => Promise.reject(new Error("down")) })).toBe(false);
  });
});
