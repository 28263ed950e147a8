// Option values that plugins take in the same notation, each with one error message wherever it
// is used: durations and lists of IP networks (sizes are `byteSize`, beside the server's limits).
import { z } from "zod";
import { IpNetworkList } from "./ip.ts";

const millisecondsPer: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const durationPattern = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i;

/** "500ms", "30s", "1.5h", "36d" → milliseconds (rounded); undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = durationPattern.exec(text);
  if (!match) return undefined;
  return Math.round(Number(match[1]) * millisecondsPer[match[2]!.toLowerCase()]!);
}

/** What a bare number means in a duration option. */
export type DurationNumbers = "milliseconds" | "seconds";

/**
 * The schema of a duration option, whose value is milliseconds: a string such as "500ms", "30s",
 * "5m", "2h", "36d", or a number — of milliseconds (a whole number), or of seconds where an option
 * has always counted bare numbers in seconds (greylist's). One error message for every wrong value.
 */
export function durationSchema(numbers: DurationNumbers = "milliseconds") {
  const expected =
    numbers === "seconds"
      ? 'expected a duration such as 300 (seconds), "5m" or "36d"'
      : 'expected a duration such as 300000, "5m" or "36d"';
  const number = z.number({ error: expected }).min(0, { error: expected });
  return z.union(
    [
      numbers === "seconds"
        ? number.transform((seconds) => Math.round(seconds * 1000))
        : number.int({ error: expected }),
      z
        .string()
        .regex(durationPattern, { error: expected })
        .transform((text) => parseDuration(text)!),
    ],
    // One message for the union: zod's own would be "Invalid input".
    { error: expected },
  );
}

/** A duration option in milliseconds: 300000, "500ms", "30s", "5m", "2h", "36d". */
export const duration = durationSchema();

const networkExpected = 'expected a network such as "192.0.2.0/24", "2001:db8::/32" or one address';

/** A list of client networks ("192.0.2.0/24", "2001:db8::/32", one address) as an IpNetworkList. */
export const ipNetworks = z
  .array(z.string({ error: networkExpected }), { error: 'expected a list of networks such as ["192.0.2.0/24"]' })
  .transform((texts, context): IpNetworkList => {
    const parsed = IpNetworkList.parse(texts);
    if (parsed instanceof IpNetworkList) return parsed;
    context.addIssue({ code: "custom", path: [parsed.invalid], message: networkExpected });
    return z.NEVER;
  });
