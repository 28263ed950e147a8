// The options of tlsPolicy() (the inbound half): which listeners need TLS before AUTH and MAIL.
// Listeners are named by their `name` or their port, as in the server config.
import { z } from "zod";

export interface InboundTlsPolicyOptions {
  /**
   * Listeners on which a client must be encrypted before AUTH (538 5.7.11) and MAIL (530 5.7.0):
   * `true` for every listener, or a list of listener names and ports. Default: none (an MX on
   * port 25 must accept plaintext from MTAs that cannot do TLS; RFC 3207 §4).
   */
  requireTls?: boolean | (string | number)[];
}

export const inboundTlsPolicyOptionsSchema = z.strictObject({
  requireTls: z
    .union([z.boolean(), z.array(z.union([z.string().min(1), z.number().int().min(0).max(65535)]))], {
      error: 'expected true, false, or a list of listener names and ports, e.g. ["submission", 465]',
    })
    .default(false),
});

export type ResolvedInboundTlsPolicyOptions = z.output<typeof inboundTlsPolicyOptionsSchema>;
