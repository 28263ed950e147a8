// Fail fast at startup: the root must exist (or be creatable), be writable and allow hard links,
// rather than every message answering 451 later.
import { randomBytes } from "node:crypto";
import { link, mkdir, open, unlink } from "node:fs/promises";
import { join } from "node:path";
import { PosternError } from "@postern/core";

export class MaildirRootError extends PosternError {
  declare readonly code: "POSTERN_MAILDIR_ROOT";
  readonly root: string;

  constructor(root: string, cause: NodeJS.ErrnoException) {
    const uid = process.getuid?.();
    super(
      "POSTERN_MAILDIR_ROOT",
      `cannot use the Maildir root ${root}: ${cause.code ?? "error"} (${cause.message}). ` +
        `Make it a directory writable by the user Postern runs as${uid === undefined ? "" : ` (uid ${uid})`}, ` +
        "on a file system that supports hard links, or change the root option.",
      { cause, plugin: "@postern/store-maildir" },
    );
    this.root = root;
  }
}

export async function checkRoot(root: string): Promise<void> {
  const probe = join(root, `.postern-probe-${process.pid}-${randomBytes(4).toString("hex")}`);
  const probeLink = `${probe}.link`;
  try {
    await mkdir(root, { recursive: true, mode: 0o700 });
    const handle = await open(probe, "wx", 0o600);
    try {
      await handle.write("probe\n");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await link(probe, probeLink);
  } catch (error) {
    throw new MaildirRootError(root, error as NodeJS.ErrnoException);
  } finally {
    await unlink(probeLink).catch(() => undefined);
    await unlink(probe).catch(() => undefined);
  }
}
