// @postern/dmarc — DMARC (RFC 9989) and ARC (RFC 8617) at DATA on mailauth. It reads the SPF
// and DKIM results @postern/spf and @postern/dkim already recorded (SPF as a structured
// Authentication-Results entry in core, DKIM under dkim's typed key), computing them itself only
// when those plugins are not configured, enforces the domain's policy as configured, and adds the
// dmarc and arc entries of the one Authentication-Results field. Optionally it ARC-seals mail it
// forwards.
import {
  type AuthResultEntry,
  authResultsOf,
  authResultsValue,
  defer,
  eventKey,
  type HookContext,
  type Message,
  type Plugin,
  parseOptions,
  recordAuthResults,
  reject,
  resultKey,
  type ServerContext,
  type Transaction,
  writeAuthenticationResults,
} from "@postern/core";
import { type DkimResult, dkimEntries, dkimResult, loadSigningKeys, type SigningKey, verifyDkim } from "@postern/dkim";
import { spf as mailauthSpf } from "mailauth";
import { z } from "zod";
import { type ArcResult, sealMessage, verifyArc } from "./arc.ts";
import { type DmarcPolicy, type DmarcResult, evaluate } from "./evaluate.ts";

export type { ArcResult } from "./arc.ts";
export type { DmarcPolicy, DmarcResult } from "./evaluate.ts";

/** What was done with the message, and why. */
export interface DmarcDisposition {
  readonly action: "accept" | "quarantine" | "reject" | "defer";
  /** Set when a failing message was let through against the domain's policy. */
  readonly override: "trusted_forwarder" | "local_policy" | undefined;
}

/** The DMARC evaluation of the transaction (with the disposition), set at DATA. */
export const dmarcResult = resultKey<DmarcResult & { readonly disposition: DmarcDisposition }>("dmarc");
/**
 * One DMARC evaluation, on the observer channel (`dmarcEvaluated`) for aggregate reports and
 * whoever else counts them: the result with its disposition and the inputs it was computed
 * from — the transaction (client address, envelope), every DKIM signature and the SPF entries.
 */
export interface DmarcEvaluatedEvent {
  /** When (epoch ms). */
  readonly at: number;
  readonly transaction: Transaction;
  readonly result: DmarcResult & { readonly disposition: DmarcDisposition };
  readonly dkim: DkimResult;
  /** The SPF entries recorded for the transaction (smtp.mailfrom, and smtp.helo where checked). */
  readonly spf: readonly AuthResultEntry[];
}
export const dmarcEvaluated = eventKey<DmarcEvaluatedEvent>("dmarc.evaluated");
/** The ARC chain validation of the transaction, set at DATA. */
export const arcResult = resultKey<ArcResult>("arc");
/** Set once the message was ARC-sealed (by the queue hook). */
export const arcSealed = resultKey<{ readonly instance: number; readonly domain: string }>("arc-sealed");

const optionsSchema = z
  .object({
    /** A failing message from a p=reject domain: refuse at end of DATA (550 5.7.1), quarantine, or accept. */
    reject: z.enum(["reject", "quarantine", "accept"]).default("reject"),
    /** A failing message from a p=quarantine domain. */
    quarantine: z.enum(["quarantine", "reject", "accept"]).default("quarantine"),
    /** DNS failed while evaluating (temperror): record only, or ask the client to retry (451 4.7.5). */
    temperror: z.enum(["accept", "defer"]).default("accept"),
    /** How a quarantined message is marked: a header field and/or a route for its recipients. */
    quarantineAs: z
      .object({
        /** Header field added on top, or false for none. */
        header: z
          .union([z.literal(false), z.string().regex(/^[\x21-\x39\x3b-\x7e]+$/)])
          .default("X-Postern-Quarantine"),
        /** Route given to every recipient (e.g. "quarantine" for a storage plugin that files it). */
        route: z.string().min(1).optional(),
      })
      .strict()
      .prefault({}),
    /** Don't evaluate mail from sessions that authenticated (your own users' submissions). */
    skipAuthenticated: z.boolean().default(true),
    arc: z
      .object({
        /** Validate ARC chains and report arc= in Authentication-Results. */
        verify: z.boolean().default(true),
        /**
         * Sealers (ARC-Seal d=) whose passing chain overrides a DMARC failure (RFC 9989 §11.3,
         * RFC 8617 §7.2): mailing lists and forwarders you trust to have authenticated the mail.
         */
        trustedSealers: z.array(z.string().min(1)).default([]),
        /** Seal mail we forward: an ARC set signed with this key for these routes. */
        seal: z
          .object({
            domain: z.string().min(1),
            selector: z.string().min(1),
            keyFile: z.string().min(1),
            routes: z.array(z.string().min(1)).default(["relay"]),
          })
          .strict()
          .optional(),
        /** RSA keys shorter than this fail ARC validation. */
        minKeyBits: z.number().int().min(512).max(16384).default(1024),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type DmarcOptions = z.input<typeof optionsSchema>;
type Config = z.output<typeof optionsSchema>;

function enforcement(config: Config, result: DmarcResult): "accept" | "quarantine" | "reject" | "defer" {
  if (result.result === "temperror") return config.temperror === "defer" ? "defer" : "accept";
  if (result.result !== "fail") return "accept";
  const policy: DmarcPolicy = result.policy ?? "none";
  if (policy === "reject") return config.reject;
  if (policy === "quarantine") return config.quarantine;
  return "accept";
}

function quarantine(config: Config, transaction: Transaction, message: Message, result: DmarcResult): void {
  const { header, route } = config.quarantineAs;
  if (header) {
    // Only our own mark counts: a copy the sender wrote is removed.
    message.removeHeader(header);
    message.prepend(header, `DMARC policy of ${result.policyDomain ?? result.fromDomain} (p=${result.policy}) failed`);
  }
  if (route) {
    for (const recipient of transaction.recipients) transaction.reroute(recipient, route);
  }
}

export default function dmarc(options: DmarcOptions = {}) {
  const config = parseOptions(optionsSchema, options, "@postern/dmarc");
  const trustedSealers = new Set(config.arc.trustedSealers.map((domain) => domain.toLowerCase().replace(/\.$/, "")));
  let server: ServerContext | undefined;
  let sealKey: SigningKey | undefined;
  const context = () => {
    if (!server) throw new Error("@postern/dmarc was not set up; add it to the server's plugins");
    return server;
  };

  /**
   * SPF and DKIM as their plugins recorded them; computed here only when those are not configured
   * (SPF with mailauth directly, so this plugin does not depend on @postern/spf).
   */
  const inputs = async (
    transaction: Transaction,
    message: Message,
  ): Promise<{ spfPassDomains: string[]; dkim: DkimResult }> => {
    const { hostname, resolver } = context();
    const session = transaction.session;
    if (authResultsOf(transaction, "spf").length === 0 && !session.remoteAddress.startsWith("unix")) {
      const outcome = await mailauthSpf({
        sender: transaction.mailFrom.address || undefined,
        ip: session.remoteAddress,
        helo: session.heloName,
        mta: hostname,
        resolver: resolver.resolve,
        maxElapsedTime: 20_000,
      });
      const identity = transaction.mailFrom.address ? "smtp.mailfrom" : "smtp.helo";
      recordAuthResults(transaction, "spf", [
        { text: outcome.info, result: outcome.status.result, properties: { [identity]: outcome.domain } },
      ]);
    }
    let dkim = transaction.results.get(dkimResult);
    if (!dkim) {
      dkim = await verifyDkim(message.original(), {
        resolver: resolver.resolve,
        minKeyBits: 1024,
        rejectRsaSha1: true,
        sender: transaction.mailFrom.address,
      });
      transaction.results.set(dkimResult, dkim);
      recordAuthResults(transaction, "dkim", dkimEntries(dkim));
    }
    // Only a passing SPF identity can align (RFC 9989 §4.4): MAIL FROM's; HELO's only for the null
    // sender. An SPF plugin may also report the HELO identity of a non-null sender (RFC 7208
    // §2.3): that entry never counts, or a client saying EHLO victim.example would align.
    const identity = transaction.mailFrom.address ? "smtp.mailfrom" : "smtp.helo";
    const spfPassDomains = authResultsOf(transaction, "spf").flatMap((entry) => {
      const domain = entry.properties?.[identity];
      return entry.result === "pass" && domain ? [domain.replace(/^.*@/, "")] : [];
    });
    return { spfPassDomains, dkim };
  };

  const seal = async (transaction: Transaction, message: Message, { log }: HookContext) => {
    const arc = transaction.results.get(arcResult);
    const key = sealKey!;
    try {
      const fields = arc
        ? await sealMessage(message, arc, key, authResultsValue(transaction, context().authservId))
        : [];
      // Prepended newest-first: the ARC-Seal ends up on top, as mailauth orders the set.
      for (const [name, value] of [...fields].reverse()) message.prepend(name, value);
      if (fields.length > 0) transaction.results.set(arcSealed, { instance: arc!.instance + 1, domain: key.domain });
    } catch (error) {
      log.error({ err: error }, "ARC sealing failed");
      return defer("4.3.0", "Temporary local problem (ARC sealing), try again later");
    }
    return undefined;
  };

  return {
    name: "@postern/dmarc",
    async setup(serverContext: ServerContext) {
      server = serverContext;
      const sealing = config.arc.seal;
      if (sealing) {
        const keys = await loadSigningKeys([sealing]);
        sealKey = [...keys.values()][0]![0];
      }
    },
    hooks: {
      async data(transaction, message) {
        if (config.skipAuthenticated && transaction.session.user !== undefined) return undefined;
        const { authservId, resolver } = context();
        const { spfPassDomains, dkim } = await inputs(transaction, message);
        let arc: ArcResult | undefined;
        if (config.arc.verify) {
          arc = await verifyArc(dkim.verification, {
            resolver: resolver.resolve,
            minKeyBits: config.arc.minKeyBits,
          });
          transaction.results.set(arcResult, arc);
          recordAuthResults(transaction, "arc", [arc.authResults]);
        }
        const result = await evaluate({ spfPassDomains, dkim, arc, resolver: resolver.resolve });
        let chosen = enforcement(config, result);
        let override: DmarcDisposition["override"];
        if (
          (chosen === "reject" || chosen === "quarantine") &&
          arc?.result === "pass" &&
          arc.sealer &&
          trustedSealers.has(arc.sealer)
        ) {
          chosen = "accept";
          override = "trusted_forwarder";
        } else if (result.result === "fail" && result.policy !== "none" && chosen === "accept") {
          override = "local_policy";
        }
        const evaluated = { ...result, disposition: { action: chosen, override } };
        transaction.results.set(dmarcResult, evaluated);
        const { events } = context();
        if (events.observed(dmarcEvaluated)) {
          events.emit(dmarcEvaluated, {
            at: Date.now(),
            transaction,
            result: evaluated,
            dkim,
            spf: authResultsOf(transaction, "spf"),
          });
        }
        recordAuthResults(transaction, "dmarc", [
          override
            ? `${result.authResults} (override ${override}${override === "trusted_forwarder" ? ` ${arc!.sealer}` : ""})`
            : result.authResults,
        ]);
        // The quarantine mark goes first, so our Authentication-Results stays the topmost field.
        if (chosen === "quarantine") quarantine(config, transaction, message, result);
        writeAuthenticationResults(transaction, message, authservId);
        const domain = result.policyDomain ?? result.fromDomain;
        switch (chosen) {
          case "reject":
            return reject(
              "5.7.1",
              `Rejected by the DMARC policy of ${domain}: From is not aligned with a passing SPF or DKIM identity`,
            );
          case "defer":
            return defer("4.7.5", `DMARC policy of ${result.fromDomain} could not be checked (DNS), try again later`);
          default:
            return undefined;
        }
      },
      // Sealing waits for the queue hook, like DKIM signing: the set covers the final bytes and
      // our final Authentication-Results. Once per transaction, before any storage plugin.
      queue: {
        order: "pre",
        async handler(transaction, message, _group, hookContext) {
          const sealing = config.arc.seal;
          if (!sealing || !sealKey || transaction.results.has(arcSealed)) return undefined;
          if (!transaction.recipients.some((recipient) => sealing.routes.includes(recipient.route))) return undefined;
          return seal(transaction, message, hookContext);
        },
      },
    },
  } satisfies Plugin;
}
