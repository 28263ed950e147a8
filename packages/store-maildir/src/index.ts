// @postern/store-maildir — durable local delivery into Maildir (readable by Dovecot). Takes the
// route groups named in `routes` in the queue hook and answers accept() only once the message is
// durable in new/ of every recipient's mailbox (file and directory entry).
import { hostname } from "node:os";
import { resolve } from "node:path";
import { accept, DirectorySync, defer, type Plugin, parseOptions, reject } from "@postern/core";
import { type DeliveryContext, deliver } from "./deliver.ts";
import { KnownMailboxes } from "./known-mailboxes.ts";
import { mailboxPath } from "./mailbox-path.ts";
import { type MaildirOptions, maildirOptionsSchema } from "./options.ts";
import { checkRoot } from "./root-check.ts";
import { deliveryMaildir } from "./subaddress-folder.ts";

export type { Delivered } from "./deliver.ts";
export type { MaildirOptions } from "./options.ts";
export { MaildirRootError } from "./root-check.ts";

const pluginName = "@postern/store-maildir";

export interface MaildirPlugin extends Plugin {
  /**
   * Resolves while the root takes a file (written, fsynced, hard-linked, removed: what a delivery
   * does), rejects with a MaildirRootError otherwise — a full or read-only disk, say. What /readyz
   * of @postern/metrics asks.
   */
  ready(): Promise<void>;
}

export default function maildir(options: MaildirOptions): MaildirPlugin {
  const resolved = parseOptions(maildirOptionsSchema, options, pluginName);
  // Relative to the working directory when the config is loaded, like every other path option.
  const root = resolve(resolved.root);
  const routes = new Set(resolved.routes);
  let defaultDomain = hostname();
  // Shared by this store's deliveries: mailboxes already made, and one fsync per new/ directory
  // for all deliveries that entered it meanwhile (group commit).
  const context: DeliveryContext = { known: new KnownMailboxes(), directories: new DirectorySync() };

  return {
    name: pluginName,
    async setup(server) {
      defaultDomain = server.hostname;
      await checkRoot(root);
    },
    ready() {
      return checkRoot(root);
    },
    hooks: {
      async queue(transaction, message, group, { signal, log }) {
        if (!routes.has(group.route)) return undefined;

        const mailboxes = new Set<string>();
        for (const recipient of group.recipients) {
          const target = mailboxPath(root, resolved.layout, recipient.address, defaultDomain);
          if (!target.ok) {
            // Fail closed, and permanently: a recipient plugin (e.g. @postern/recipients) should
            // have refused this address at RCPT. After DATA we cannot refuse one recipient alone,
            // so the whole group is refused and nothing is stored. 5xx, not 4xx: the address will
            // never become a safe path, so a retry could only repeat this for days before the
            // sender's queue gives up; a 550 makes the sender bounce now, with the reason.
            log.error({ recipient: recipient.address, reason: target.reason }, "unsafe mailbox name");
            return reject("5.1.1", `Recipient <${recipient.address}> has no usable local mailbox`);
          }
          // Recipients that share a mailbox (Alice@ and alice@, or a shared layout) get one copy.
          mailboxes.add(
            await deliveryMaildir(target.path, recipient.detail, resolved.subaddressFolders, context.known),
          );
        }

        try {
          const delivered = await deliver([...mailboxes], message.stream(), signal, context);
          // `file`, not `name`: the root logger binds name: "postern", and a second `name` in the
          // same JSON line is read differently by every log shipper.
          log.info(
            { file: delivered.name, size: delivered.size, mailboxes: delivered.paths.length },
            "stored in Maildir",
          );
          return accept();
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          log.error({ err: error, code, queueId: transaction.id }, `Maildir delivery failed: ${code ?? String(error)}`);
          return defer("4.3.0", "Mailbox temporarily unavailable, try again later");
        }
      },
    },
  } satisfies MaildirPlugin;
}
