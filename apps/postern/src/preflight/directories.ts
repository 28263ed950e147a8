// The directories the server writes to — the DATA spool and every Maildir root — checked without
// creating anything: each must be a writable directory, or not exist yet under a writable one, and
// must lie on a real file system, not /proc or /sys.
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { resolve } from "node:path";
import type { Plugin, ServerConfig } from "@postern/core";
import { originOf } from "../plugin-options.ts";
import { error, type Finding } from "./finding.ts";
import { nearestExisting, pseudoFileSystemOf } from "./pseudo-file-systems.ts";

interface WritableDirectory {
  /** The config key naming it. */
  key: string;
  /** The path as written in the config. */
  path: string;
  /** What it is for, in messages. */
  role: string;
}

function errnoCode(cause: unknown): string {
  return (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
}

async function checkDirectory(target: WritableDirectory, directory: string): Promise<Finding[]> {
  const absolute = resolve(directory, target.path);
  const pseudo = await pseudoFileSystemOf(absolute);
  if (pseudo) {
    return [
      error(
        target.key,
        `${target.path} is on ${pseudo}, a kernel pseudo file system; expected a directory on a real disk for the ${target.role}`,
      ),
    ];
  }
  const existing = await nearestExisting(absolute);
  const creates = existing !== absolute;
  try {
    if (!(await stat(existing)).isDirectory()) {
      return [
        error(target.key, `${creates ? `${existing} (in the way of ${target.path})` : target.path} is not a directory`),
      ];
    }
    await access(existing, constants.W_OK | constants.X_OK);
  } catch (cause) {
    const uid = process.getuid?.();
    const who = uid === undefined ? "this user" : `uid ${uid}`;
    const what = creates
      ? `cannot create ${target.path}: ${existing} is not writable`
      : `${target.path} is not writable`;
    return [error(target.key, `${what} by ${who} (${errnoCode(cause)}); the ${target.role} needs it`)];
  }
  return [];
}

/** The Maildir roots of the @postern/store-maildir plugins in the config, from the options they were made with. */
function maildirRoots(plugins: readonly Plugin[]): WritableDirectory[] {
  return plugins.flatMap((plugin, index) => {
    const origin = originOf(plugin);
    if (origin?.package !== "@postern/store-maildir") return [];
    const root = (origin.options as { root?: unknown } | undefined)?.root;
    return typeof root === "string" ? [{ key: `plugins.${index}.options.root`, path: root, role: "Maildir root" }] : [];
  });
}

export async function checkDirectories(config: ServerConfig, directory: string): Promise<Finding[]> {
  const targets: WritableDirectory[] = [
    { key: "spoolDir", path: config.spoolDir, role: "spool of messages being received" },
    ...maildirRoots(config.plugins),
  ];
  return (await Promise.all(targets.map((target) => checkDirectory(target, directory)))).flat();
}
