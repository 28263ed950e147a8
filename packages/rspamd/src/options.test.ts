// Option mistakes are one line naming the key and what was expected there.
import { ConfigError } from "@postern/core";
import { describe, expect, it } from "vitest";
import rspamd, { parseEndpoint, type RspamdOptions } from "./index.ts";

function problem(options: unknown): string {
  try {
    rspamd(options as RspamdOptions);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("the options were accepted");
}

describe("rspamd() options", () => {
  it.each([
    [
      { url: "127.0.0.1:11333" },
      '@postern/rspamd.url: expected "http://HOST:PORT" or "unix:/path/to/rspamd.sock" (got "127.0.0.1:11333")',
    ],
    [
      { url: "https://rspamd.example:11333" },
      '@postern/rspamd.url: expected "http://HOST:PORT" or "unix:/path/to/rspamd.sock" (got "https://rspamd.example:11333")',
    ],
    [{ timeoutMs: 0 }, "@postern/rspamd.timeoutMs: expected a positive number of milliseconds (got 0)"],
    [{ onError: "tempfail" }, '@postern/rspamd.onError: expected "defer", "reject" or "accept" (got "tempfail")'],
    [
      { maxScanSize: "lots" },
      '@postern/rspamd.maxScanSize: expected a size such as 52428800, "50MB" or "512KB" (got "lots")',
    ],
    [
      { actions: { reject: "bounce" } },
      '@postern/rspamd.actions.reject: expected one of "reject", "defer", "quarantine", "discard", "rewriteSubject", "addHeader", "accept" (got "bounce")',
    ],
    [
      { actions: { "soft reject": "defer" } },
      "@postern/rspamd.actions.soft reject: unknown setting; check its spelling and where it sits",
    ],
    [
      { header: { name: "X Spam" } },
      '@postern/rspamd.header.name: expected a header field name (printable ASCII without spaces or colons) (got "X Spam")',
    ],
    [
      { header: "yes" },
      '@postern/rspamd.header: expected false or { name: "X-Spamd-Result", symbols: true } (got "yes")',
    ],
    [
      { rules: [{ when: { networks: ["10.0.0.0/8", "10.0.0.300"] }, skip: true }] },
      '@postern/rspamd.rules.0.when.networks.1: expected a network such as "192.0.2.0/24", "2001:db8::/32" or one address (got "10.0.0.300")',
    ],
    [
      { rules: [{ when: { authenticated: "yes" } }] },
      '@postern/rspamd.rules.0.when.authenticated: expected true or false (got "yes")',
    ],
    [
      { rules: [{ skip: true }] },
      "@postern/rspamd.rules.0.when: Invalid input: expected object, received undefined (got nothing)",
    ],
    [{ timeout: 5000 }, "@postern/rspamd.timeout: unknown setting; check its spelling and where it sits"],
  ])("%j → %s", (options, message) => {
    expect(problem(options)).toBe(message);
  });

  it("takes the documented forms", () => {
    expect(() =>
      rspamd({
        url: "unix:/run/rspamd/rspamd.sock",
        maxScanSize: 10_000_000,
        header: false,
        actions: { greylist: "accept" },
        rules: [{ when: { listeners: ["submission"], authenticated: true }, settingsId: "outbound" }],
      }),
    ).not.toThrow();
  });
});

describe("parseEndpoint", () => {
  it.each([
    ["http://127.0.0.1:11333", { kind: "tcp", host: "127.0.0.1", port: 11333, basePath: "" }],
    ["http://[::1]:11333/", { kind: "tcp", host: "::1", port: 11333, basePath: "" }],
    ["http://rspamd.internal/scan/", { kind: "tcp", host: "rspamd.internal", port: 80, basePath: "/scan" }],
    ["unix:/run/rspamd/rspamd.sock", { kind: "unix", path: "/run/rspamd/rspamd.sock" }],
    ["http://user:pass@host:1", undefined],
    ["unix:relative.sock", undefined],
  ])("%s", (text, endpoint) => {
    expect(parseEndpoint(text)).toEqual(endpoint);
  });
});
