// @postern/spf — SPF (RFC 7208) at MAIL FROM on mailauth: a result per transaction under the
// typed `spfResult` key, a policy per result, a Received-SPF field and the spf entry of the
// Authentication-Results field.
import {
  defer,
  type Plugin,
  parseOptions,
  recordAuthResults,
  reject,
  resultKey,
  type ServerContext,
  type Verdict,
  writeAuthenticationResults,
} from "@postern/core";
import { z } from "zod";
import { checkSpf, type SpfResult } from "./check.ts";

export type { SpfCheckInput, SpfResult, SpfResultKeyword } from "./check.ts";
export { checkSpf, spfResults } from "./check.ts";

/** The SPF result of the transaction, set at MAIL FROM. */
export const spfResult = resultKey<SpfResult>("spf");

/** What to do with a result: record it only ("accept"), refuse (5xx) or ask to retry (4xx). */
const action = z.enum(["accept", "reject", "defer"]);
export type SpfAction = z.infer<typeof action>;

const optionsSchema = z
  .object({
    /** Per result; every result is only recorded unless set here (DMARC usually decides). */
    pass: action.default("accept"),
    fail: action.default("accept"),
    softfail: action.default("accept"),
    neutral: action.default("accept"),
    none: action.default("accept"),
    temperror: action.default("accept"),
    permerror: action.default("accept"),
    /** Skip SPF for sessions that authenticated (submission): their address is not the domain's. */
    skipAuthenticated: z.boolean().default(true),
    /** Add a Received-SPF field (RFC 7208 §9.1). */
    receivedSpf: z.boolean().default(true),
    /** DNS-querying mechanisms allowed (RFC 7208 §4.6.4); past it the result is permerror. */
    maxLookups: z.number().int().min(1).max(100).default(10),
    /** Lookups answering NXDOMAIN or no data that are allowed (RFC 7208 §4.6.4). */
    maxVoidLookups: z.number().int().min(0).max(100).default(2),
    /** Deadline for the whole evaluation; past it the result is temperror. */
    timeoutMs: z.number().int().positive().default(20_000),
  })
  .strict();

export type SpfOptions = z.input<typeof optionsSchema>;

function verdictFor(result: SpfResult, chosen: SpfAction): Verdict | undefined {
  if (chosen === "accept") return undefined;
  // RFC 7372: x.7.23 "SPF validation failed", x.7.24 "SPF validation error".
  const error = result.result === "temperror" || result.result === "permerror";
  const why =
    result.result === "fail" && result.explanation
      ? `SPF ${result.result} for ${result.domain}: ${result.explanation}`
      : `SPF ${result.result} for ${result.domain}${error ? " (SPF validation error)" : ""}`;
  if (chosen === "reject") return reject(error ? "5.7.24" : "5.7.23", why);
  return defer(error ? "4.7.24" : "4.7.23", `${why}; try again later`);
}

export default function spf(options: SpfOptions = {}) {
  const config = parseOptions(optionsSchema, options, "@postern/spf");
  let server: ServerContext | undefined;
  const context = () => {
    if (!server) throw new Error("@postern/spf was not set up; add it to the server's plugins");
    return server;
  };

  return {
    name: "@postern/spf",
    setup(serverContext: ServerContext) {
      server = serverContext;
    },
    hooks: {
      async mailFrom(transaction, address) {
        const session = transaction.session;
        if (config.skipAuthenticated && session.user !== undefined) return undefined;
        const { hostname, resolver } = context();
        const result = await checkSpf({
          sender: address.address,
          ip: session.remoteAddress,
          helo: session.heloName,
          hostname,
          resolver: resolver.resolve,
          maxLookups: config.maxLookups,
          maxVoidLookups: config.maxVoidLookups,
          timeoutMs: config.timeoutMs,
        });
        transaction.results.set(spfResult, result);
        return verdictFor(result, config[result.result]);
      },
      async data(transaction, message) {
        const result = transaction.results.get(spfResult);
        if (!result) return undefined;
        if (config.receivedSpf) message.prepend("Received-SPF", result.receivedSpf);
        // Structured too, so DMARC reads the result and the domain without depending on this plugin.
        recordAuthResults(transaction, "spf", [
          {
            text: result.authResults,
            result: result.result,
            properties: { [result.identity === "helo" ? "smtp.helo" : "smtp.mailfrom"]: result.domain },
          },
        ]);
        writeAuthenticationResults(transaction, message, context().authservId);
        return undefined;
      },
    },
  } satisfies Plugin;
}
