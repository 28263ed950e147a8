// The password file: one `user:hash` line per user (PHC hash strings), `#` comments and blank
// lines kept as written. Names are case-insensitive and stored in lower case. Writes are atomic —
// a temp file in the same directory, fsync, rename over the old one, fsync of the directory — with
// mode 0600, under an exclusive lock file so two `postern user` commands never lose an update.
// The lock is core's acquireFileLock: it names its owner (boot id, PID, start time), so a command
// killed halfway leaves no lock that blocks the next one.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { open, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { acquireFileLock, type FileLock, FileLockedError } from "@postern/core";
import { AuthError } from "./errors.ts";
import { hashProblem } from "./password-hash.ts";

type Line = { kind: "text"; text: string } | { kind: "user"; user: string; hash: string };

// Printable, no whitespace, no ":" (the separator); an address or a plain login name.
const usernamePattern = /^[^\s:\p{Cc}]{1,320}$/u;

/** The stored form of a user name (lower case), or a thrown AuthError when it cannot be one. */
export function normalizeUsername(name: string): string {
  const trimmed = name.normalize("NFC").trim();
  if (!usernamePattern.test(trimmed)) {
    throw new AuthError(
      "POSTERN_AUTH_BAD_USERNAME",
      `"${name}" cannot be a user name: expected 1–320 characters without spaces, control characters or ":"`,
    );
  }
  return trimmed.toLowerCase();
}

export class PasswordFile {
  readonly #lines: Line[];

  private constructor(lines: Line[]) {
    this.#lines = lines;
  }

  static empty(): PasswordFile {
    return new PasswordFile([
      { kind: "text", text: "# Postern users: name:hash (PHC). Edit with `postern user add|passwd|remove|list`." },
    ]);
  }

  /** Parses the file's text; a bad line is an error naming the file and the line. */
  static parse(text: string, file: string): PasswordFile {
    const lines: Line[] = [];
    const seen = new Set<string>();
    const rows = text.split(/\r?\n/);
    if (rows.at(-1) === "") rows.pop();
    for (const [index, row] of rows.entries()) {
      const where = `${file}:${index + 1}`;
      if (row.trim() === "" || row.trimStart().startsWith("#")) {
        lines.push({ kind: "text", text: row });
        continue;
      }
      const colon = row.indexOf(":");
      if (colon <= 0) {
        throw new AuthError("POSTERN_AUTH_PASSWORD_FILE_INVALID", `${where}: expected "name:hash"`);
      }
      let user: string;
      try {
        user = normalizeUsername(row.slice(0, colon));
      } catch (error) {
        throw new AuthError("POSTERN_AUTH_PASSWORD_FILE_INVALID", `${where}: ${(error as Error).message}`);
      }
      const hash = row.slice(colon + 1).trim();
      const problem = hashProblem(hash);
      if (problem) throw new AuthError("POSTERN_AUTH_PASSWORD_FILE_INVALID", `${where}: ${problem}`);
      if (seen.has(user)) {
        throw new AuthError("POSTERN_AUTH_PASSWORD_FILE_INVALID", `${where}: "${user}" is listed twice`);
      }
      seen.add(user);
      lines.push({ kind: "user", user, hash });
    }
    return new PasswordFile(lines);
  }

  get(user: string): string | undefined {
    const name = user.toLowerCase();
    const line = this.#lines.find((entry) => entry.kind === "user" && entry.user === name);
    return line?.kind === "user" ? line.hash : undefined;
  }

  users(): string[] {
    return this.#lines.flatMap((line) => (line.kind === "user" ? [line.user] : []));
  }

  /** Any stored hash, as a model for the decoy compared against for unknown users. */
  firstHash(): string | undefined {
    const line = this.#lines.find((entry) => entry.kind === "user");
    return line?.kind === "user" ? line.hash : undefined;
  }

  /** Adds the user, or replaces their hash where they are listed. */
  set(user: string, hash: string): void {
    const name = normalizeUsername(user);
    const line = this.#lines.find((entry) => entry.kind === "user" && entry.user === name);
    if (line?.kind === "user") line.hash = hash;
    else this.#lines.push({ kind: "user", user: name, hash });
  }

  /** Removes the user; false when they were not listed. */
  delete(user: string): boolean {
    const name = user.toLowerCase();
    const index = this.#lines.findIndex((entry) => entry.kind === "user" && entry.user === name);
    if (index === -1) return false;
    this.#lines.splice(index, 1);
    return true;
  }

  toString(): string {
    return this.#lines
      .map((line) => (line.kind === "text" ? line.text : `${line.user}:${line.hash}`))
      .join("\n")
      .concat("\n");
  }
}

export async function readPasswordFile(path: string): Promise<PasswordFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const hint = code === "ENOENT" ? " (create it with `postern user add <name> --file <path>`)" : "";
    throw new AuthError(
      "POSTERN_AUTH_PASSWORD_FILE_UNREADABLE",
      `cannot read the password file ${path}: ${(cause as Error).message}${hint}`,
      { cause },
    );
  }
  return PasswordFile.parse(text, path);
}

/** Replaces the file atomically with `contents`, mode 0600. */
export async function writeFileAtomically(path: string, contents: string): Promise<void> {
  const directory = dirname(path);
  const temporary = join(directory, `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.writeFile(contents, "utf8");
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  // The rename is durable once the directory entry is.
  const dir = await open(directory, constants.O_RDONLY);
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

/**
 * Reads the file (or starts an empty one when `create` and it does not exist), lets `change`
 * edit it, and writes it back atomically, all under `<file>.lock`.
 */
export async function updatePasswordFile<T>(
  path: string,
  change: (file: PasswordFile) => T | Promise<T>,
  options: {
    create?: boolean /** How long to wait for another holder of the lock (default 10 s). */;
    lockWaitMs?: number;
  } = {},
): Promise<T> {
  const lockPath = `${path}.lock`;
  let lock: FileLock;
  try {
    // Another command's change takes well under a second: wait for it rather than fail.
    lock = await acquireFileLock(lockPath, { waitMs: options.lockWaitMs ?? 10_000, purpose: path });
  } catch (cause) {
    if (!(cause instanceof FileLockedError)) throw cause;
    throw new AuthError(
      "POSTERN_AUTH_PASSWORD_FILE_LOCKED",
      `another \`postern user\` command is changing ${path}: ${(cause as Error).message.replace(/^.*? is locked: /, "")}`,
      { cause },
    );
  }
  try {
    let file: PasswordFile;
    const exists = await stat(path).then(
      () => true,
      (error: NodeJS.ErrnoException) => (error.code === "ENOENT" ? false : Promise.reject(error)),
    );
    if (!exists && options.create) file = PasswordFile.empty();
    else file = await readPasswordFile(path);
    const result = await change(file);
    await writeFileAtomically(path, file.toString());
    return result;
  } finally {
    await lock.release();
  }
}
