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
import { checkableHelo, checkSpf, type SpfResult } from "./check.ts";

export type { SpfCheckInput, SpfResult, SpfResultKeyword } from "./check.ts";
export { checkableHelo, checkSpf, spfResults } from "./check.ts";

/** The SPF result of the transaction, set at MAIL FROM (the HELO identity's for the null sender). */
export const spfResult = resultKey<SpfResult>("spf");

/**
 * The HELO identity's own result (RFC 7208 §2.3), checked for every sender with a FQDN HELO name;
 * for the null sender it is `spfResult` itself. DMARC does not use it for a non-null sender.
 */
export const spfHeloResult = resultKey<SpfResult>("spf.helo");

/** The session's HELO result, kept while the client does not say EHLO again. */
const sessionHelo = resultKey<{ name: string; result: Promise<SpfResult> }>("spf.helo.session");

/** What to do with a result: record it only ("accept"), refuse (5xx) or ask to retry (4xx). */
const action = z.enum(["accept", "reject", "defer"]);
export type SpfAction = z.infer<typeof action>;

const policy = {
  pass: action.default("accept"),
  fail: action.default("accept"),
  softfail: action.default("accept"),
  neutral: action.default("accept"),
  none: action.default("accept"),
  temperror: action.default("accept"),
  permerror: action.default("accept"),
};

const optionsSchema = z
  .object({
    /** Per result; every result is only recorded unless set here (DMARC usually decides). */
    ...policy,
    /**
     * The HELO identity checked on its own for every sender (RFC 7208 §2.3), reported as
     * smtp.helo; its own policy per result (record only by default).
     */
    helo: z
      .object({ check: z.boolean().default(true), ...policy })
      .strict()
      .prefault({}),
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
  const what =
    result.identity === "helo"
      ? `SPF ${result.result} for HELO ${result.domain}`
      : `SPF ${result.result} for ${result.domain}`;
  const why =
    result.result === "fail" && result.explanation
      ? `${what}: ${result.explanation}`
      : `${what}${error ? " (SPF validation error)" : ""}`;
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
        const check = (sender: string) =>
          checkSpf({
            sender,
            ip: session.remoteAddress,
            helo: session.heloName,
            hostname,
            resolver: resolver.resolve,
            maxLookups: config.maxLookups,
            maxVoidLookups: config.maxVoidLookups,
            timeoutMs: config.timeoutMs,
          });
        if (address.address !== "" && config.helo.check && checkableHelo(session.heloName)) {
          // Once per session and HELO name: later transactions of the connection reuse it.
          let cached = session.results.get(sessionHelo);
          if (cached?.name !== session.heloName) {
            cached = { name: session.heloName, result: check("") };
            session.results.set(sessionHelo, cached);
          }
          const helo = await cached.result;
          transaction.results.set(spfHeloResult, helo);
          // A conclusive HELO answer may end the transaction before MAIL FROM's policy is looked up.
          const refused = verdictFor(helo, config.helo[helo.result]);
          if (refused) return refused;
        }
        const result = await check(address.address);
        transaction.results.set(spfResult, result);
        return verdictFor(result, config[result.result]);
      },
      async data(transaction, message) {
        const result = transaction.results.get(spfResult);
        if (!result) return undefined;
        const helo = transaction.results.get(spfHeloResult);
        // One Received-SPF per identity checked (RFC 7208 §9.1), MAIL FROM's on top.
        if (config.receivedSpf && helo) message.prepend("Received-SPF", helo.receivedSpf);
        if (config.receivedSpf) message.prepend("Received-SPF", result.receivedSpf);
        // Structured too, so DMARC reads the result and the domain without depending on this plugin.
        // HELO's entry first (it is checked first, RFC 7208 §2.3), MAIL FROM's last: readers that
        // keep one spf= result per method (mailauth's ARC summary among them) keep MAIL FROM's.
        recordAuthResults(transaction, "spf", [
          ...(helo ? [{ text: helo.authResults, result: helo.result, properties: { "smtp.helo": helo.domain } }] : []),
          {
            // With the HELO identity in its own entry, MAIL FROM's names only its own.
            text: helo ? result.authResults.replace(/\s+smtp\.helo=\S+/, "") : result.authResults,
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
