// The inbound TLS policy: TLS before AUTH and MAIL on the listeners that need it, TLS facts and the
// sender's REQUIRETLS / TLS-Required request recorded for other plugins. Its hooks run "pre", so a
// password backend never judges credentials the policy refuses, and nothing later sees a
// transaction the policy refused.
//
// The protocol floor (TLS 1.2 by default) and ciphers are listener settings in core
// (`minTlsVersion`, `ciphers`): a version can only be refused during the handshake.
import { type Plugin, parseOptions, reject } from "@postern/core";
import { selectsListener } from "./listener-match.ts";
import { type InboundTlsPolicyOptions, inboundTlsPolicyOptionsSchema } from "./options.ts";
import { deliveryTlsRequest, tlsFacts } from "./results.ts";

const pluginName = "@postern/tls-policy";

/** RFC 8689 §5: "TLS-Required: No", compared case-insensitively, whitespace ignored. */
function saysTlsNotRequired(values: readonly string[]): boolean {
  return values.some((value) => value.trim().toLowerCase() === "no");
}

export function inboundTlsPolicy(options: InboundTlsPolicyOptions = {}): Plugin {
  const resolved = parseOptions(inboundTlsPolicyOptionsSchema, options, pluginName);
  return {
    name: pluginName,
    hooks: {
      secure(session) {
        const tls = session.tls;
        if (!tls) return undefined;
        session.results.set(tlsFacts, {
          protocol: tls.protocol,
          cipher: tls.cipher,
          servername: tls.servername,
          clientCertificate: tls.clientCertificate,
          listener: session.listener.name,
        });
        return undefined;
      },

      auth: {
        order: "pre",
        handler(session) {
          if (session.tls || !selectsListener(resolved.requireTls, session.listener)) return undefined;
          // RFC 4954 §6.
          return reject("5.7.11", "Encryption required: issue STARTTLS before AUTH", 538);
        },
      },

      mailFrom: {
        order: "pre",
        handler(transaction) {
          const session = transaction.session;
          if (!session.tls && selectsListener(resolved.requireTls, session.listener)) {
            return reject("5.7.0", "Must issue a STARTTLS command first", 530);
          }
          // smtp-server already refuses REQUIRETLS in clear; this keeps the promise if it ever did not.
          if (transaction.requireTls && !session.tls) {
            return reject("5.7.10", "REQUIRETLS needs a TLS session", 530);
          }
          transaction.results.set(deliveryTlsRequest, {
            requireTls: transaction.requireTls,
            ignoreRecipientTlsPolicy: false,
          });
          return undefined;
        },
      },

      data(transaction, message) {
        // RFC 8689 §5: with REQUIRETLS the header field is ignored.
        if (transaction.requireTls || !saysTlsNotRequired(message.headers.getAll("TLS-Required"))) return undefined;
        transaction.results.set(deliveryTlsRequest, { requireTls: false, ignoreRecipientTlsPolicy: true });
        return undefined;
      },
    },
  } satisfies Plugin;
}
