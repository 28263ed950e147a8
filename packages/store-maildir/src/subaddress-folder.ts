// Where a message for alice+news goes when subaddress folders are on: the Maildir++ folder
// ".news" inside alice's Maildir (Dovecot shows it as the folder "news"), read from the detail
// @postern/recipients split off (recipient.detail). Only plain names become folders — letters,
// digits, "-", "_", and "." between them (Maildir++'s hierarchy separator: "lists.postern" is
// "lists/postern") — lower-cased, so +News and +news share one; any other detail is delivered to
// the inbox, never refused and never rewritten into some other folder's name.
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { KnownMailboxes } from "./known-mailboxes.ts";

/** "off": the inbox always; "existing": the folder when it already exists; "create": made when missing. */
export type SubaddressFolders = "off" | "existing" | "create";

/** Longest folder name taken (Dovecot's own limit on a mailbox name is 255 bytes). */
const maxFolderName = 100;
const folderName = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;

/** The Maildir++ folder a detail names (".news"), or undefined when it names none. */
export function folderOf(detail: string | undefined): string | undefined {
  if (detail === undefined) return undefined;
  const name = detail.toLowerCase();
  if (name.length > maxFolderName || !folderName.test(name)) return undefined;
  return `.${name}`;
}

/** The Maildir to deliver into for `mailbox` (its root) and a subaddress detail. */
export async function deliveryMaildir(
  mailbox: string,
  detail: string | undefined,
  mode: SubaddressFolders,
  known: KnownMailboxes,
): Promise<string> {
  const folder = mode === "off" ? undefined : folderOf(detail);
  if (folder === undefined) return mailbox;
  const path = join(mailbox, folder);
  if (mode === "create") return path; // made with cur/, new/, tmp/ (and fsynced) by the delivery
  const found = await stat(join(path, "new")).then(
    (entry) => entry.isDirectory(),
    () => false,
  );
  if (found) await known.ensure(path); // complete it if cur/ or tmp/ went missing
  return found ? path : mailbox;
}
