import { describe, expect, it } from "vitest";
import { newQueueId } from "./queue-id.ts";

describe("queue IDs", () => {
  it("are 20 base32 characters that sort by time", () => {
    const early = newQueueId(1_700_000_000_000);
    const late = newQueueId(1_800_000_000_000);
    expect(early).toMatch(/^[0-9A-HJKMNP-TV-Z]{20}$/);
    expect(early < late).toBe(true);
    expect(newQueueId(0).slice(0, 10)).toBe("0000000000");
    expect(newQueueId(31).slice(0, 10)).toBe("000000000Z");
  });

  it("do not repeat", () => {
    const ids = new Set(Array.from({ length: 5000 }, () => newQueueId(1_700_000_000_000)));
    expect(ids.size).toBe(5000);
  });
});
