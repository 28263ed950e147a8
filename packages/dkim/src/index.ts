// @postern/dkim — DKIM on mailauth: verifies every signature of incoming mail at DATA (result
// under the typed `dkimResult` key, dkim entries in Authentication-Results), and signs relayed
// or authenticated mail with the From domain's keys just before it is stored or sent.
import {
  type AuthResultEntry,
  defer,
  type HookContext,
  type Message,
  type Plugin,
  parseOptions,
  recordAuthResults,
  resultKey,
  type ServerContext,
  type Transaction,
  writeAuthenticationResults,
} from "@postern/core";
import { z } from "zod";
import { fromDomainOf, keysFor, loadSigningKeys, type SigningKey } from "./keys.ts";
import { signMessage } from "./sign.ts";
import { type DkimResult, verifyDkim } from "./verify.ts";

export type { DkimKeyAlgorithm, GeneratedDkimKey } from "./keygen.ts";
export { formatTxtRecord, generateDkimKey, splitTxtValue } from "./keygen.ts";
export type { SigningKey, SigningKeyConfig } from "./keys.ts";
export { loadSigningKeys } from "./keys.ts";
export type { DkimResult, DkimResultKeyword, DkimSignatureResult } from "./verify.ts";
export { verifyDkim } from "./verify.ts";

/** Every DKIM signature of the incoming message, verified at DATA. */
export const dkimResult = resultKey<DkimResult>("dkim");

export interface DkimSigned {
  readonly domain: string;
  readonly selectors: readonly string[];
}
/** Set once the message was signed (by the queue hook). */
export const dkimSigned = resultKey<DkimSigned>("dkim-signed");

const verifySchema = z
  .object({
    /** RSA keys shorter than this give dkim=policy (weak key); RFC 8301 requires 1024. */
    minKeyBits: z.number().int().min(512).max(16384).default(1024),
    /** rsa-sha1 signatures give dkim=policy (RFC 8301 §3.1: MUST NOT be used for verifying). */
    rejectRsaSha1: z.boolean().default(true),
    /** Don't verify mail from sessions that authenticated (your own users' submissions). */
    skipAuthenticated: z.boolean().default(true),
  })
  .strict();

const selectorPattern = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/i;

const signSchema = z
  .object({
    keys: z
      .array(
        z
          .object({
            domain: z.string().min(1),
            selector: z.string().regex(selectorPattern, { error: "expected a selector such as 2026a" }),
            keyFile: z.string().min(1),
          })
          .strict(),
      )
      .min(1, { error: "expected at least one key { domain, selector, keyFile }" }),
    /** Sign a transaction when one of its recipients has one of these routes. */
    routes: z.array(z.string().min(1)).default(["relay"]),
    /** Also sign every message from an authenticated session, whatever its routes. */
    authenticated: z.boolean().default(false),
    /** Header fields to sign; mailauth's default list when unset. */
    headers: z.array(z.string().min(1)).min(1).optional(),
    canonicalization: z
      .enum(["relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple"])
      .default("relaxed/relaxed"),
    /** Adds an expiry (x=) this many seconds after signing. */
    expireAfterSeconds: z.number().int().positive().optional(),
  })
  .strict();

const optionsSchema = z
  .object({
    /** Verification settings, or false to only sign. */
    verify: z.union([z.literal(false), verifySchema]).prefault({}),
    /** Signing settings; no signing when unset. */
    sign: signSchema.optional(),
  })
  .strict();

export type DkimOptions = z.input<typeof optionsSchema>;

/** The dkim entries of Authentication-Results, with each signature's result and d= for DMARC. */
export function dkimEntries(result: DkimResult): readonly (string | Omit<AuthResultEntry, "method">)[] {
  if (result.signatures.length === 0) return result.authResults;
  return result.signatures.map((signature) => ({
    text: signature.authResults,
    result: signature.result,
    properties: signature.domain ? { "header.d": signature.domain } : ({} as Record<string, string>),
  }));
}

export default function dkim(options: DkimOptions = {}) {
  const config = parseOptions(optionsSchema, options, "@postern/dkim");
  let server: ServerContext | undefined;
  let keys: Map<string, SigningKey[]> = new Map();
  const context = () => {
    if (!server) throw new Error("@postern/dkim was not set up; add it to the server's plugins");
    return server;
  };

  const shouldSign = (transaction: Transaction): boolean => {
    const sign = config.sign;
    if (!sign || transaction.results.has(dkimSigned)) return false;
    if (sign.authenticated && transaction.session.user !== undefined) return true;
    return transaction.recipients.some((recipient) => sign.routes.includes(recipient.route));
  };

  const sign = async (transaction: Transaction, message: Message, { log }: HookContext) => {
    const fromDomain = fromDomainOf(message.headers);
    const chosen = fromDomain ? keysFor(keys, fromDomain) : [];
    if (chosen.length === 0) {
      log.debug({ fromDomain }, "no DKIM key for the From domain; not signed");
      return undefined;
    }
    try {
      const fields = await signMessage(message, chosen, {
        headers: config.sign?.headers,
        canonicalization: config.sign!.canonicalization,
        expireAfterSeconds: config.sign?.expireAfterSeconds,
      });
      for (const value of fields.reverse()) message.prepend("DKIM-Signature", value);
    } catch (error) {
      // Fail closed: relayed mail from our domain must not leave unsigned because a key broke.
      log.error({ err: error }, "DKIM signing failed");
      return defer("4.3.0", "Temporary local problem (DKIM signing), try again later");
    }
    transaction.results.set(dkimSigned, {
      domain: chosen[0]!.domain,
      selectors: chosen.map((key) => key.selector),
    });
    return undefined;
  };

  return {
    name: "@postern/dkim",
    async setup(serverContext: ServerContext) {
      server = serverContext;
      if (config.sign) keys = await loadSigningKeys(config.sign.keys);
    },
    hooks: {
      async data(transaction, message) {
        const verify = config.verify;
        if (verify === false) return undefined;
        if (verify.skipAuthenticated && transaction.session.user !== undefined) return undefined;
        const { authservId, resolver } = context();
        const result = await verifyDkim(message.original(), {
          resolver: resolver.resolve,
          minKeyBits: verify.minKeyBits,
          rejectRsaSha1: verify.rejectRsaSha1,
          sender: transaction.mailFrom.address,
        });
        transaction.results.set(dkimResult, result);
        recordAuthResults(transaction, "dkim", dkimEntries(result));
        writeAuthenticationResults(transaction, message, authservId);
        return undefined;
      },
      // Signing waits for the queue hook: every data hook (Authentication-Results, DMARC, other
      // plugins' fields) has run, so the signature covers the bytes storage and delivery get.
      // "pre" puts it before the storage plugins; it signs once, on the first route group.
      queue: {
        order: "pre",
        async handler(transaction, message, _group, hookContext) {
          if (!shouldSign(transaction)) return undefined;
          return sign(transaction, message, hookContext);
        },
      },
    },
  } satisfies Plugin;
}
