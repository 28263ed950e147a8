// postern-plugin-template — a Postern plugin. The factory validates its options with zod (so a bad
// option is one line naming the key) and returns the plugin: a name and hooks. This one refuses
// senders from listed domains at MAIL FROM; replace the hook with yours.
import { type Plugin, parseOptions, type ResultKey, reject, resultKey } from "@postern/core";
import { z } from "zod";

const pluginName = "postern-plugin-template";

const optionsSchema = z.strictObject({
  /** Sender domains refused at MAIL FROM, e.g. ["spam.example"]. */
  blockedDomains: z.array(z.string().min(1)).min(1, { error: 'expected at least one domain, e.g. ["spam.example"]' }),
  /** The text of the 550 reply. */
  message: z.string().min(1).default("Mail from this domain is not accepted here"),
});

export type TemplatePluginOptions = z.input<typeof optionsSchema>;

/** What the plugin decided, for other plugins and for logs. */
export interface TemplatePluginResult {
  /** The sender's domain ("" for the null sender of bounces). */
  readonly domain: string;
  readonly blocked: boolean;
}

/** Other plugins read the decision with `transaction.results.get(templatePluginResult)`. */
export const templatePluginResult: ResultKey<TemplatePluginResult> = resultKey<TemplatePluginResult>(pluginName);

export default function templatePlugin(options: TemplatePluginOptions): Plugin {
  const resolved = parseOptions(optionsSchema, options, pluginName);
  const blocked = new Set(resolved.blockedDomains.map((domain) => domain.toLowerCase()));
  return {
    name: pluginName,
    hooks: {
      mailFrom(transaction, sender) {
        const at = sender.address.lastIndexOf("@");
        const domain = at === -1 ? "" : sender.address.slice(at + 1).toLowerCase();
        const isBlocked = blocked.has(domain);
        transaction.results.set(templatePluginResult, { domain, blocked: isBlocked });
        // Returning nothing lets the next plugin decide; a verdict ends the chain.
        return isBlocked ? reject("5.7.1", resolved.message) : undefined;
      },
    },
  } satisfies Plugin;
}
