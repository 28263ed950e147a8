// smtp-adapter.ts replaces or wraps a few of smtp-server's internals (see its header). smtp-server
// is pinned exactly in package.json; this test fails when the installed version, or the source of
// any internal Postern relies on, differs from what the adapter was written against — so an
// upgrade is a deliberate review of smtp-adapter.ts, never a silent change on a user's machine.
// After reviewing, update the version and the fingerprints below.
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);
const { SMTPConnection } = require("smtp-server/lib/smtp-connection.js") as {
  SMTPConnection: { prototype: Record<string, unknown> };
};
const { SMTPServer } = require("smtp-server") as { SMTPServer: { prototype: Record<string, unknown> } };
const manifest = require("smtp-server/package.json") as { version: string };
const ours = require("../package.json") as { dependencies: Record<string, string> };

const fingerprint = (fn: unknown) =>
  createHash("sha256")
    .update(String(fn as () => void))
    .digest("hex")
    .slice(0, 16);

/** What the adapter overrides or calls, with the source it was written against (3.21.6). */
const reviewed = {
  connection: {
    init: "1265a7d7ca8f5510", // replaced: per-listener greeting delay
    send: "c33568c0111a58b2", // wrapped: keep our enhanced codes, hide AUTH before TLS, 538 text
    handler_EHLO: "42394b3ad94f3deb", // wrapped: the helo hook runs first
    handler_HELO: "b95050ffd35b5d29",
    handler_MAIL: "a40618dd2e16f0fa", // wrapped: a parameter without a keyword or value is 501 5.5.4
    handler_RCPT: "ef2acd7214eaa466",
    _setListeners: "cf07ab6f47db09ac", // called by our init
    connectionReady: "62c0ab75022331de", // called by our init
    close: "8b9a23413167403a", // called on disconnect verdicts and deadlines
  },
  server: {
    connect: "93b1653205c941e9", // replaced: adapt each connection before init
    _onError: "01d6f6dc6b8d6e90", // called by our connect
    _onClientConnect: "530fef2b2700ba7a",
  },
};

describe("smtp-server internals Postern patches", () => {
  it("is the exact version the adapter was reviewed against, pinned without a range", () => {
    expect(ours.dependencies["smtp-server"]).toBe("3.21.6");
    expect(manifest.version).toBe("3.21.6");
  });

  it("has the same source for every internal the adapter overrides or calls", () => {
    const connection = Object.fromEntries(
      Object.keys(reviewed.connection).map((name) => [name, fingerprint(SMTPConnection.prototype[name])]),
    );
    const server = Object.fromEntries(
      Object.keys(reviewed.server).map((name) => [name, fingerprint(SMTPServer.prototype[name])]),
    );
    expect({ connection, server }).toEqual(reviewed);
  });
});
