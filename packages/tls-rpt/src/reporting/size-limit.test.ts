import { describe, expect, it } from "vitest";
import { base64Size, splitSizeLimit } from "./size-limit.ts";

describe("rua size limits", () => {
  it("splits DMARC's size suffix off a URI, in bytes, with k/m/g/t in powers of two", () => {
    expect(splitSizeLimit("mailto:a@example.com!10m")).toEqual({ uri: "mailto:a@example.com", maxBytes: 10_485_760 });
    expect(splitSizeLimit("mailto:a@example.com!100")).toEqual({ uri: "mailto:a@example.com", maxBytes: 100 });
    expect(splitSizeLimit("mailto:a@example.com!2K")).toEqual({ uri: "mailto:a@example.com", maxBytes: 2048 });
    expect(splitSizeLimit("mailto:a@example.com!1g").maxBytes).toBe(2 ** 30);
    expect(splitSizeLimit("mailto:a@example.com")).toEqual({ uri: "mailto:a@example.com", maxBytes: undefined });
    expect(splitSizeLimit("mailto:a@example.com!x")).toEqual({ uri: "mailto:a@example.com!x", maxBytes: undefined });
  });

  it("measures an attachment as mailed: base64 in 76-column CRLF lines", () => {
    expect(base64Size(0)).toBe(0);
    expect(base64Size(3)).toBe(4);
    expect(base64Size(57)).toBe(76);
    expect(base64Size(58)).toBe(80 + 2);
    expect(base64Size(1000)).toBe(
      Buffer.from(new Uint8Array(1000))
        .toString("base64")
        .match(/.{1,76}/g)!
        .join("\r\n").length,
    );
  });
});
