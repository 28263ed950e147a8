// Typed result keys: this plugin reads what @postern/dnsbl found, and publishes its own result
// under a key other plugins import.

import { type Plugin, type ResultKey, resultKey } from "@postern/core";
import { dnsblResult } from "@postern/dnsbl";

export interface SpamScore {
  readonly score: number;
  readonly reasons: readonly string[];
}

/** Readers import this key; `transaction.results.get(spamScore)` is then a SpamScore | undefined. */
export const spamScore: ResultKey<SpamScore> = resultKey<SpamScore>("spam-score");

export default function spamScorer(): Plugin {
  return {
    name: "spam-score",
    hooks: {
      data(transaction, message) {
        const reasons: string[] = [];
        let score = 0;
        // Typed: `listing` is a DnsblResult | undefined, no cast and no string lookup.
        const listing = transaction.session.results.get(dnsblResult);
        if (listing && listing.score > 0) {
          score += 2 * listing.score;
          reasons.push(`dnsbl ${listing.score}`);
        }
        if (!message.headers.has("message-id")) {
          score += 1;
          reasons.push("no Message-ID");
        }
        transaction.results.set(spamScore, { score, reasons });
        message.prepend("X-Spam-Score", `${score.toFixed(1)} (${reasons.join(", ") || "clean"})`);
      },
    },
  } satisfies Plugin;
}
