// Milter addresses in the notations operators copy from Postfix, Sendmail and OpenDKIM configs.
import { describe, expect, it } from "vitest";
import { parseMilterAddress } from "./options.ts";

describe("parseMilterAddress", () => {
  it.each([
    ["inet:127.0.0.1:8891", { kind: "tcp", host: "127.0.0.1", port: 8891 }],
    ["inet:8891@127.0.0.1", { kind: "tcp", host: "127.0.0.1", port: 8891 }],
    ["inet:8891@localhost", { kind: "tcp", host: "localhost", port: 8891 }],
    ["inet:[::1]:11332", { kind: "tcp", host: "::1", port: 11332 }],
    ["inet6:[::1]:11332", { kind: "tcp", host: "::1", port: 11332 }],
    ["inet6:11332@[::1]", { kind: "tcp", host: "::1", port: 11332 }],
    ["unix:/run/opendkim/opendkim.sock", { kind: "unix", path: "/run/opendkim/opendkim.sock" }],
    ["local:/var/run/clamav/clamav-milter.ctl", { kind: "unix", path: "/var/run/clamav/clamav-milter.ctl" }],
  ])("%s", (text, address) => {
    expect(parseMilterAddress(text)).toEqual(address);
  });

  it.each([
    "127.0.0.1:8891",
    "inet:127.0.0.1",
    "inet:host:0",
    "inet:host:70000",
    "unix:relative/path",
    "tcp:1.2.3.4:1",
  ])("refuses %s", (text) => {
    expect(parseMilterAddress(text)).toBeUndefined();
  });
});
