import { accept, type Plugin } from "@postern/core";
import dnsbl from "@postern/dnsbl";
import { buildMessage, claimRecipients, memoryQueue, startTestServer, type TestServer } from "@postern/testing";
import { afterEach, describe, expect, it } from "vitest";
import spamScorer, { type SpamScore, spamScore } from "./spam-score.ts";

// #region reader
// A storage plugin further down reads the score, with its type, from the key it imports.
function quarantine(stored: SpamScore[]): Plugin {
  return {
    name: "quarantine",
    hooks: {
      queue(transaction) {
        const result = transaction.results.get(spamScore); // SpamScore | undefined
        if (!result || result.score < 2) return undefined; // not ours: the normal store takes it
        stored.push(result); // … a real one writes the message to a quarantine folder here
        return accept();
      },
    },
  };
}
// #endregion reader

let server: TestServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe("spam-score", () => {
  it("reads the DNSBL result by its typed key and publishes its own", async () => {
    const quarantined: SpamScore[] = [];
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [
        dnsbl({ zones: ["bl.test"], action: "accept" }),
        claimRecipients(),
        spamScorer(),
        quarantine(quarantined),
        queue.plugin,
      ],
      // Test clients connect from 127.0.0.1: bl.test lists it.
      dns: { "1.0.0.127.bl.test": { A: ["127.0.0.2"] } },
    });
    await server.send({ to: "user@localhost", raw: buildMessage() });

    expect(quarantined).toEqual([{ score: 2, reasons: ["dnsbl 1"] }]);
    expect(queue.messages).toHaveLength(0); // the quarantine took it
  });

  it("scores 0 when nothing was found, and the normal store takes the message", async () => {
    const quarantined: SpamScore[] = [];
    const queue = memoryQueue();
    server = await startTestServer({
      plugins: [dnsbl({ zones: ["bl.test"] }), claimRecipients(), spamScorer(), quarantine(quarantined), queue.plugin],
      dns: {},
    });
    await server.send({ to: "user@localhost", raw: buildMessage() });
    expect(quarantined).toEqual([]);
    expect(queue.messages[0]!.bytes.toString()).toMatch(/^X-Spam-Score: 0\.0 \(clean\)\r\n/);
    expect(queue.messages[0]!.transaction.results.get(spamScore)).toEqual({ score: 0, reasons: [] });
  });
});
