// What `postern address test` shows: how the configured plugin resolves one address — the
// mailboxes and forwards it stands for (with routes, details and the SRS sender a forward gets),
// the list members dropped on the way, or the refusal and why; for another domain, who may relay.
// It opens the plugin's own directory (same options, same files, same lookups), so the answer is
// the one the running server gives, like Postfix's `postmap -q`.
import { type Plugin, parseAddress } from "@postern/core";
import { type Directory, openResolvedDirectory } from "./directory.ts";
import type { DroppedTarget, Target } from "./expansion.ts";
import { type RefusalReason, refusalVerdict } from "./expansion-reply.ts";
import type { ResolvedRecipientsOptions } from "./options.ts";
import { decideRecipient, type RelayRules } from "./policy.ts";

export interface PluginSettings {
  readonly options: ResolvedRecipientsOptions;
  /** Where relative file names in the options are taken from. */
  readonly baseDir: string;
  readonly relay: RelayRules;
}

const settingsOf = new WeakMap<Plugin, PluginSettings>();

/** Called by recipients() for each plugin it makes. */
export function rememberSettings(plugin: Plugin, settings: PluginSettings): void {
  settingsOf.set(plugin, settings);
}

export type AddressExplanation =
  | {
      readonly kind: "local";
      readonly address: string;
      /** What core adds as recipients, each with the envelope sender its delivery uses. */
      readonly targets: readonly (Target & { readonly sender: string | undefined })[];
      readonly dropped: readonly DroppedTarget[];
    }
  | {
      readonly kind: "refused";
      readonly address: string;
      readonly reason: RefusalReason;
      /** The RCPT TO reply, e.g. "550 5.1.1 No such user here". */
      readonly reply: string;
      /** Why a lookup failed (for "lookup-failed"). */
      readonly cause: string | undefined;
    }
  | {
      readonly kind: "remote";
      readonly address: string;
      readonly domain: string;
      /** Who may relay there through this plugin; anyone else gets core's 550 5.7.1. */
      readonly relay: { readonly networks: readonly string[]; readonly authenticated: boolean };
    };

export interface AddressTest {
  /** The resolvers asked, in order ("srs", "aliases", "postgres 127.0.0.1:5432/mail", "catch-all"). */
  readonly resolvers: readonly string[];
  /** The SRS domain, when forwarding rewrites senders. */
  readonly srsDomain: string | undefined;
  /** `from`: the MAIL FROM a forward's SRS sender is shown for. */
  explain(address: string, options: { from: string }): Promise<AddressExplanation>;
  close(): Promise<void>;
}

/**
 * Opens the directory of a plugin recipients() made, for `postern address test`. Undefined for
 * any other plugin. Close it when done (it holds the lookups' connections).
 */
export async function addressTestFor(plugin: Plugin): Promise<AddressTest | undefined> {
  const settings = settingsOf.get(plugin);
  if (!settings) return undefined;
  const directory: Directory = await openResolvedDirectory(settings.options, {
    baseDir: settings.baseDir,
    prefix: plugin.name,
  });
  return {
    resolvers: directory.resolvers,
    srsDomain: directory.srs?.domain,
    async explain(address, { from }) {
      const parsed = parseAddress(address);
      if (parsed.kind === "mailbox" && !directory.isLocalDomain(parsed.domain)) {
        return {
          kind: "remote",
          address,
          domain: parsed.domain,
          relay: {
            networks: settings.relay.networks.networks.map((network) => network.text),
            authenticated: settings.relay.authenticated,
          },
        };
      }
      const decision = await decideRecipient(directory, settings.relay, address, {
        remoteAddress: "",
        user: undefined,
        localSubmission: false,
      });
      if (decision.outcome === "local") {
        const sender = from !== "" && directory.srs ? directory.srs.forward(from) : undefined;
        return {
          kind: "local",
          address,
          targets: decision.targets.map((target) => ({
            ...target,
            sender: target.kind === "forward" ? sender : undefined,
          })),
          dropped: decision.dropped,
        };
      }
      if (decision.outcome !== "refused") throw new Error(`unexpected decision ${decision.outcome} for ${address}`);
      const verdict = refusalVerdict(decision.reason);
      return {
        kind: "refused",
        address,
        reason: decision.reason,
        reply: `${verdict.code} ${verdict.status} ${verdict.text}`,
        cause: decision.cause?.message,
      };
    },
    close: () => directory.close(),
  };
}
