// @postern/auth — SMTP AUTH (PLAIN, LOGIN) against a password file of scrypt or argon2id hashes,
// a built-in floor on failed attempts, and sender ownership: an authenticated user may only use
// the MAIL FROM and From addresses they own. Core records the user on the session (session.user),
// so later hooks (e.g. @postern/recipients, to allow relaying) see who it is.
import { stat } from "node:fs/promises";
import {
  accept,
  defer,
  disconnect,
  type Logger,
  type Plugin,
  parseOptions,
  type ResultKey,
  reject,
  resultKey,
} from "@postern/core";
import { FailureFloor } from "./failure-floor.ts";
import { fromAddresses } from "./from-header.ts";
import { type AuthOptions, authOptionsSchema } from "./options.ts";
import { type PasswordFile, readPasswordFile } from "./password-file.ts";
import { decoyFor, verifyPassword } from "./password-hash.ts";
import { senderPolicy } from "./sender-policy.ts";

export type { AuthErrorCode } from "./errors.ts";
export { AuthError } from "./errors.ts";
export type { AuthOptions } from "./options.ts";
export { normalizeUsername, PasswordFile, readPasswordFile, updatePasswordFile } from "./password-file.ts";
export type { HashOptions, HashScheme } from "./password-hash.ts";
export { argon2Available, defaultScryptCost, hashPassword, verifyPassword } from "./password-hash.ts";

export interface Authentication {
  /** The user name as stored in the password file (lower case). */
  readonly user: string;
  /** "PLAIN" or "LOGIN". */
  readonly method: string;
}

/** On `session.results` once this plugin accepted the credentials. */
export const authentication: ResultKey<Authentication> = resultKey<Authentication>("auth");

const pluginName = "@postern/auth";
const tooManyFailures = "Too many failed authentication attempts, try again later";

export default function auth(options: AuthOptions): Plugin {
  const resolved = parseOptions(authOptionsSchema, options, pluginName);
  const path = resolved.passwordFile;
  const limit = resolved.failureLimit;
  const floor = limit ? new FailureFloor(limit) : undefined;
  const owns = senderPolicy({
    senders: resolved.senders,
    defaultSenders: resolved.defaultSenders,
    subaddressSeparator: resolved.subaddressSeparator,
  }).owns;

  let users: PasswordFile | undefined;
  let decoy = decoyFor(undefined);
  let loadedStamp = "";
  let serverLog: Logger | undefined;

  const stampOf = async () => {
    const info = await stat(path);
    return { stamp: `${info.ino}:${info.mtimeMs}:${info.size}`, mode: info.mode };
  };

  const load = async () => {
    // Stamp first: a change landing between the two is then seen by the next refresh.
    const info = await stampOf().catch(() => undefined);
    users = await readPasswordFile(path);
    loadedStamp = info?.stamp ?? "";
    decoy = decoyFor(users.firstHash());
    const mode = info?.mode ?? 0;
    if ((mode & 0o077) !== 0) {
      serverLog?.warn(
        { file: path, mode: (mode & 0o777).toString(8) },
        "the password file is readable by others; chmod 600 it",
      );
    }
  };

  /** Picks up `postern user` changes: re-reads the file when it was replaced or changed. */
  const refresh = async (log: Logger) => {
    try {
      const { stamp } = await stampOf();
      if (stamp === loadedStamp) return;
      await load();
      log.info({ file: path, users: users?.users().length }, "password file reloaded");
    } catch (error) {
      // Keep the users we have: a half-edited or missing file must not lock everyone out.
      log.error(
        { err: error, file: path },
        `cannot reload the password file; still using the previous one: ${(error as Error).message}`,
      );
      loadedStamp = "";
    }
  };

  return {
    name: pluginName,

    async setup(server) {
      serverLog = server.logger.child({ plugin: pluginName });
      await load();
    },

    hooks: {
      async auth(session, credentials, { log }) {
        if (floor?.isLockedOut(session.remoteAddress)) {
          log.info({ user: credentials.username }, "AUTH refused: too many failures from this client");
          // RFC 4954 §6: 454 4.7.0 is AUTH's temporary failure.
          return defer("4.7.0", tooManyFailures, 454);
        }
        await refresh(log);
        const stored = users?.get(credentials.username);
        // Unknown users are checked against a decoy of the same cost: the reply time tells nothing.
        const matches = await verifyPassword(credentials.password, stored ?? decoy);
        if (matches && stored) {
          session.results.set(authentication, { user: credentials.username.toLowerCase(), method: credentials.method });
          return accept();
        }
        floor?.recordFailure(session.remoteAddress);
        log.info(
          { user: credentials.username, method: credentials.method, known: stored !== undefined },
          "AUTH failed",
        );
        // Core counts this failure after we answer, so the count seen here excludes it.
        if (limit && session.authFailures + 1 >= limit.perSession) return disconnect("4.7.0", tooManyFailures, 421);
        return reject("5.7.8", "Authentication credentials invalid", 535);
      },

      mailFrom: {
        // Before any plugin that could accept the sender and end the chain.
        order: "pre",
        handler(transaction, sender) {
          const user = transaction.session.user;
          if (user === undefined) return undefined;
          if (sender.address === "") {
            return resolved.allowNullSender ? undefined : reject("5.7.1", "The null sender is not allowed here", 553);
          }
          if (owns(user, sender.address)) return undefined;
          return reject("5.7.1", `Sender address <${sender.address}> is not owned by user ${user}`, 553);
        },
      },

      data: {
        order: "pre",
        handler(transaction, message) {
          const user = transaction.session.user;
          if (user === undefined || !resolved.checkFromHeader) return undefined;
          const fields = message.headers.getAll("From");
          const addresses = fromAddresses(fields);
          if (fields.length > 0 && addresses.length === 0) {
            return reject("5.7.1", "From header has no address this server can check", 553);
          }
          const foreign = addresses.find((address) => !owns(user, address));
          if (foreign === undefined) return undefined;
          return reject("5.7.1", `From address <${foreign}> is not owned by user ${user}`, 553);
        },
      },
    },
  } satisfies Plugin;
}
