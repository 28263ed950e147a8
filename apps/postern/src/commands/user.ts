// `postern user add|passwd|remove|list`: edits the password file @postern/auth reads. Every change
// goes through updatePasswordFile — a lock, then a temp file, fsync and an atomic rename, mode
// 0600 — so a running server (which re-reads the file when it changes) never sees half a file.
import type { HashScheme } from "@postern/auth";
import type { Command } from "../command.ts";
import { parseCommandArgs } from "../command-args.ts";
import { importOptional } from "../optional-package.ts";
import { UsageError } from "../usage-error.ts";

type AuthModule = typeof import("@postern/auth");

/** @postern/auth's defaultScryptCost, for the help text (which must not need the package); a test keeps them equal. */
export const shownScryptCost = 15;

const options = {
  file: { type: "string", short: "f" },
  scheme: { type: "string" },
  cost: { type: "string" },
} as const;

function say(line: string): void {
  process.stderr.write(`postern user: ${line}\n`);
}

/** One line from a terminal without echoing it. */
function promptHidden(prompt: string): Promise<string> {
  const input = process.stdin;
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let typed = "";
    input.setRawMode(true);
    input.resume();
    input.setEncoding("utf8");
    const finish = (error?: Error) => {
      input.setRawMode(false);
      input.pause();
      input.off("data", onData);
      process.stderr.write("\n");
      if (error) reject(error);
      else resolve(typed);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === "\r" || char === "\n") return finish();
        if (char === "\u0003") return finish(new UsageError("interrupted"));
        if (char === "\u007f" || char === "\b") typed = typed.slice(0, -1);
        else typed += char;
      }
    };
    input.on("data", onData);
  });
}

/** The new password: asked twice on a terminal, else the first line of standard input. */
async function readNewPassword(): Promise<string> {
  let password: string;
  if (process.stdin.isTTY) {
    password = await promptHidden("Password: ");
    if ((await promptHidden("Again: ")) !== password) throw new UsageError("the passwords differ");
  } else {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    password = Buffer.concat(chunks).toString("utf8").split(/\r?\n/, 1)[0] ?? "";
  }
  if (password === "") throw new UsageError("the password is empty");
  return password;
}

function hashOptions(
  { argon2Available }: AuthModule,
  values: { scheme?: string | undefined; cost?: string | undefined },
) {
  const scheme = (values.scheme ?? "scrypt") as HashScheme;
  if (scheme !== "scrypt" && scheme !== "argon2id") throw new UsageError('--scheme: expected "scrypt" or "argon2id"');
  if (scheme === "argon2id" && !argon2Available()) throw new UsageError("--scheme argon2id needs Node 24.7 or later");
  if (values.cost !== undefined && scheme !== "scrypt") throw new UsageError("--cost applies to scrypt only");
  const cost = values.cost === undefined ? undefined : Number(values.cost);
  if (cost !== undefined && !(Number.isInteger(cost) && cost >= 10 && cost <= 20)) {
    throw new UsageError(`--cost: expected log2 of scrypt's N, 10–20 (got "${values.cost}")`);
  }
  return { scheme, ...(cost === undefined ? {} : { cost }) };
}

export const user: Command = {
  name: "user",
  summary: "add, change, remove and list SMTP AUTH users in a password file",
  usage: `Usage: postern user add <name> -f <file> [--scheme scrypt|argon2id] [--cost <n>]
       postern user passwd <name> -f <file> [--scheme scrypt|argon2id] [--cost <n>]
       postern user remove <name> -f <file>
       postern user list -f <file>

Edits the password file of @postern/auth (its passwordFile option): one "name:hash" line per user.
Names are case-insensitive (stored in lower case); use the address for users who send mail, so
they own it by default. The password is asked for twice on a terminal, or read as the first line
of standard input:  printf '%s\\n' "$PASSWORD" | postern user add alice@example.com -f users

The file is replaced atomically (temp file, fsync, rename) with mode 0600; a running server picks
up the change at the next AUTH.

Options:
  -f, --file <path>   the password file (default: $POSTERN_PASSWORD_FILE); add creates it
  --scheme <scheme>   scrypt (default) or argon2id (Node 24.7+)
  --cost <n>          scrypt cost as log2 of N, 10–20 (default ${shownScryptCost}: 32 MiB per check)
  -h, --help          show this help`,

  async run(argv) {
    const { values, positionals } = parseCommandArgs(argv, options);
    const [action, name, ...extra] = positionals;
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const file = values.file ?? process.env.POSTERN_PASSWORD_FILE;
    if (!file) throw new UsageError("expected --file <path> (the passwordFile of @postern/auth)");
    const needsName = action === "add" || action === "passwd" || action === "remove";
    if (!needsName && action !== "list") {
      throw new UsageError(`expected add, passwd, remove or list${action ? ` (got "${action}")` : ""}`);
    }
    if (needsName && !name) throw new UsageError(`${action}: expected a user name`);
    if (!needsName && name) throw new UsageError(`unexpected argument "${name}"`);
    if (action !== "add" && action !== "passwd" && (values.scheme || values.cost)) {
      throw new UsageError("--scheme and --cost apply to add and passwd");
    }

    const auth = await importOptional<AuthModule>("@postern/auth", "postern user");
    const { AuthError, hashPassword, normalizeUsername, readPasswordFile, updatePasswordFile } = auth;
    try {
      switch (action) {
        case "list": {
          const users = (await readPasswordFile(file)).users();
          if (users.length > 0) process.stdout.write(`${users.join("\n")}\n`);
          return 0;
        }
        case "add":
        case "passwd": {
          const username = normalizeUsername(name!);
          const hashing = hashOptions(auth, values);
          // Refuse a wrong name before asking for a password.
          if (action === "passwd") await mustExist(auth, file, username);
          const hash = await hashPassword(await readNewPassword(), hashing);
          await updatePasswordFile(
            file,
            (passwords) => {
              const exists = passwords.get(username) !== undefined;
              if (action === "add" && exists) {
                throw new AuthError(
                  "POSTERN_AUTH_USER_EXISTS",
                  `${username} is already in ${file}; change the password with \`postern user passwd\``,
                );
              }
              if (action === "passwd" && !exists) {
                throw new AuthError("POSTERN_AUTH_NO_SUCH_USER", `${username} is not in ${file}`);
              }
              passwords.set(username, hash);
            },
            { create: action === "add" },
          );
          say(`${action === "add" ? "added" : "changed the password of"} ${username} in ${file}`);
          return 0;
        }
        default: {
          const username = name!.toLowerCase();
          await updatePasswordFile(file, (passwords) => {
            if (!passwords.delete(username)) {
              throw new AuthError("POSTERN_AUTH_NO_SUCH_USER", `${username} is not in ${file}`);
            }
          });
          say(`removed ${username} from ${file}`);
          return 0;
        }
      }
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      say(error.message);
      return 1;
    }
  },
};

async function mustExist({ AuthError, readPasswordFile }: AuthModule, file: string, username: string): Promise<void> {
  if ((await readPasswordFile(file)).get(username) === undefined) {
    throw new AuthError("POSTERN_AUTH_NO_SUCH_USER", `${username} is not in ${file}`);
  }
}
