// Locks on files that cannot outlive their owner (issue 18): the outbound filesystem spool, the
// auth password file, and whatever else one Postern process must own alone.
//
// Why a lock file that names its owner exactly, and not an OS lock (flock/fcntl):
// - Node has no flock. The npm modules that hold one (fs-ext) are native addons: every operator
//   installing @postern/core would need a compiler at install time (pnpm blocks install scripts
//   by default, and fs-ext ships no prebuilt binary), for one lock. Core stays pure TypeScript.
// - A PID alone is not an owner: after a reboot or a container restart the PID in a stale lock
//   often belongs to another live process, and a process that died under a parent that does not
//   reap (PID 1 in many containers) is a zombie that `kill(pid, 0)` calls alive. So the lock
//   records what identifies one process on Linux — the boot id (/proc/sys/kernel/random/boot_id),
//   the PID and the process's start time (field 22 of /proc/<pid>/stat, in clock ticks since
//   boot) — and all three are checked; a zombie (state Z, or X) counts as dead.
// - Where that identity cannot be checked — the owner is in another PID namespace (two containers
//   sharing a volume), /proc hides it (hidepid), or there is no /proc (macOS) — the owner's
//   heartbeat decides: the holder touches the file's mtime every staleMs/3, and a lock whose
//   heartbeat is older than staleMs is stale. This fails closed for a while instead of letting two
//   processes own one spool.
// - A plain file says who holds it, so a refusal can name the owner (PID, host, since when).
//
// The lock file is written whole under a temporary name and hard-linked into place (link fails
// with EEXIST when a lock exists), so nobody ever reads a half-written lock. A stale lock is
// renamed aside and compared with what was judged stale before it is deleted, so two processes
// taking over the same stale lock at once cannot delete each other's fresh one.
import { randomBytes } from "node:crypto";
import { readFileSync, unlinkSync } from "node:fs";
import { link, open, readFile, readlink, rename, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { PosternError } from "./errors.ts";

/** Who holds a lock, as its file says. */
export interface FileLockOwner {
  readonly pid: number;
  /** The kernel's boot id when the lock was taken (Linux only). */
  readonly bootId?: string;
  /** The owner's start time in clock ticks after boot, /proc/<pid>/stat field 22 (Linux only). */
  readonly startTime?: string;
  /** The owner's PID namespace, as /proc/self/ns/pid reads (Linux only). */
  readonly pidNamespace?: string;
  readonly hostname?: string;
  /** ISO time the lock was taken. */
  readonly acquiredAt?: string;
}

export interface FileLock {
  readonly path: string;
  /** What this lock's file records about its owner (this process). */
  readonly owner: FileLockOwner;
  /** Removes the lock file if it is still this lock's; later calls do nothing. */
  release(): Promise<void>;
}

export interface FileLockOptions {
  /** Wait this long for a lock held by a live owner before failing (0: fail at once). */
  waitMs?: number;
  /**
   * A lock whose owner cannot be checked directly (another PID namespace, no /proc) is stale once
   * its heartbeat is older than this. The holder refreshes it every staleMs / 3. Default 30 s.
   */
  staleMs?: number;
  /** What the lock protects, for the refusal's message (e.g. "queue spool /var/spool/postern"). */
  purpose?: string;
}

/**
 * The lock is held by a live owner (after waitMs). `code` is stable; `owner` is what the lock file
 * says; `message` names the owner and what to do.
 */
export class FileLockedError extends PosternError {
  declare readonly code: "POSTERN_FILE_LOCKED";
  readonly path: string;
  readonly owner: FileLockOwner | undefined;

  constructor(path: string, owner: FileLockOwner | undefined, reason: string, purpose?: string) {
    super(
      "POSTERN_FILE_LOCKED",
      `${purpose ?? path} is locked: ${reason} (lock file ${path}; it is released when its owner exits)`,
    );
    this.path = path;
    this.owner = owner;
  }
}

const defaultStaleMs = 30_000;
const pollMs = 50;

interface ProcessState {
  /** One letter: R, S, D, Z (zombie), X (dead), … */
  state: string;
  startTime: string;
}

const readText = (path: string): string | undefined => {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
};

/** /proc/<pid>/stat's state (field 3) and start time (field 22); undefined when not visible. */
async function processState(pid: number): Promise<ProcessState | undefined> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // Field 2 is "(comm)" and comm may hold spaces and parentheses: count fields after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const startTime = fields[19];
  if (!state || !startTime) return undefined;
  return { state, startTime };
}

async function pidNamespaceOf(pid: number | "self"): Promise<string | undefined> {
  return readlink(`/proc/${pid}/ns/pid`).catch(() => undefined);
}

/** What this process writes into its locks (read once: none of it changes while it runs). */
let selfOwner: Promise<FileLockOwner> | undefined;
function identifySelf(): Promise<FileLockOwner> {
  selfOwner ??= (async () => {
    const bootId = readText("/proc/sys/kernel/random/boot_id");
    const startTime = (await processState(process.pid))?.startTime;
    const pidNamespace = await pidNamespaceOf("self");
    return {
      pid: process.pid,
      ...(bootId ? { bootId } : {}),
      ...(startTime ? { startTime } : {}),
      ...(pidNamespace ? { pidNamespace } : {}),
      hostname: hostname(),
    };
  })();
  return selfOwner;
}

/** kill(pid, 0): "dead" (ESRCH), "alive", or "hidden" (EPERM: exists, owned by another user). */
function signalProbe(pid: number): "dead" | "alive" | "hidden" {
  try {
    process.kill(pid, 0);
    return "alive";
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM" ? "hidden" : "dead";
  }
}

/**
 * Lock contents this process has placed, or is placing, at each path: a lock naming this process
 * is held when its content is here, and left over from an earlier run of this PID otherwise.
 * Entered before the link, so a concurrent caller in this process never takes it for stale.
 */
const held = new Map<string, Set<string>>();
const isHeld = (path: string, content: string): boolean => held.get(path)?.has(content) ?? false;
function markHeld(path: string, content: string, yes: boolean): void {
  const contents = held.get(path) ?? new Set<string>();
  if (yes) contents.add(content);
  else contents.delete(content);
  if (contents.size > 0) held.set(path, contents);
  else held.delete(path);
}
let exitHandlerInstalled = false;
function releaseAllOnExit(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.once("exit", () => {
    for (const [path, contents] of held) {
      try {
        if (contents.has(readFileSync(path, "utf8"))) unlinkSync(path);
      } catch {
        // Gone already, or unreadable: nothing of ours to remove.
      }
    }
  });
}

type Judgement = { stale: true; why: string } | { stale: false; why: string };

interface ParsedLock {
  owner: FileLockOwner | undefined;
  /** A lock written by Postern before this module: the bare PID. */
  legacyPid: number | undefined;
}

function parseLock(raw: string): ParsedLock {
  const trimmed = raw.trim();
  if (/^\d+$/.test(trimmed)) return { owner: { pid: Number(trimmed) }, legacyPid: Number(trimmed) };
  try {
    const value = JSON.parse(trimmed) as Partial<FileLockOwner>;
    if (typeof value.pid === "number" && Number.isInteger(value.pid) && value.pid > 0) {
      return { owner: value as FileLockOwner, legacyPid: undefined };
    }
  } catch {
    // Not ours, or damaged: judged by its age below.
  }
  return { owner: undefined, legacyPid: undefined };
}

const describeOwner = (owner: FileLockOwner): string =>
  [
    `process ${owner.pid}`,
    owner.hostname ? `on ${owner.hostname}` : undefined,
    owner.acquiredAt ? `since ${owner.acquiredAt}` : undefined,
  ]
    .filter(Boolean)
    .join(" ");

/** Clock ticks per second for /proc start times: USER_HZ, 100 on every Linux ABI Node runs on. */
const ticksPerSecond = 100;

function bootTimeMs(): number | undefined {
  const line = readText("/proc/stat")
    ?.split("\n")
    .find((entry) => entry.startsWith("btime "));
  return line ? Number(line.slice(6)) * 1000 : undefined;
}

async function judge(path: string, raw: string, mtimeMs: number, staleMs: number): Promise<Judgement> {
  const self = await identifySelf();
  const heartbeatAge = Date.now() - mtimeMs;
  const byHeartbeat = (what: string): Judgement =>
    heartbeatAge > staleMs
      ? { stale: true, why: `${what}, and its heartbeat is ${Math.round(heartbeatAge / 1000)} s old` }
      : {
          stale: false,
          why: `${what}; its heartbeat is ${Math.round(heartbeatAge / 1000)} s old (stale after ${Math.round(staleMs / 1000)} s)`,
        };
  const { owner, legacyPid } = parseLock(raw);
  if (!owner) return byHeartbeat(`unreadable lock file ${JSON.stringify(raw.slice(0, 80))}`);
  const who = describeOwner(owner);

  if (legacyPid !== undefined) {
    // Written by an older Postern (the PID only). Its writer started before it wrote the file: a
    // process with that PID that started later (or a zombie, or none) is not the writer.
    if (signalProbe(legacyPid) === "dead") return { stale: true, why: `${who} is gone` };
    const state = await processState(legacyPid);
    const boot = bootTimeMs();
    if (!state || boot === undefined) return byHeartbeat(`held by ${who} (cannot inspect it)`);
    if (state.state === "Z" || state.state === "X") return { stale: true, why: `${who} is a zombie` };
    const startedAt = boot + (Number(state.startTime) / ticksPerSecond) * 1000;
    if (startedAt > mtimeMs + 1000) return { stale: true, why: `${who} started after the lock was written` };
    return { stale: false, why: `held by ${who}` };
  }

  if (owner.bootId && self.bootId && owner.bootId !== self.bootId) {
    return { stale: true, why: `${who} ran before the last reboot` };
  }
  const sameNamespace = owner.pidNamespace === self.pidNamespace;
  if (!sameNamespace || !owner.bootId || !self.bootId) {
    // The PID means nothing here (another namespace) or cannot be checked (no /proc).
    if (!sameNamespace) return byHeartbeat(`held by ${who} in another PID namespace (${owner.pidNamespace})`);
    if (signalProbe(owner.pid) === "dead") return { stale: true, why: `${who} is gone` };
    return byHeartbeat(`held by ${who}`);
  }
  if (owner.pid === self.pid && owner.startTime === self.startTime) {
    // This very process: held if one of its locks is, stale if an earlier lock was never released.
    return isHeld(path, raw)
      ? { stale: false, why: `held by this process (${self.pid})` }
      : { stale: true, why: "left by this process" };
  }
  const state = await processState(owner.pid);
  if (!state) {
    const probe = signalProbe(owner.pid);
    if (probe === "dead") return { stale: true, why: `${who} is gone` };
    // It exists but /proc does not show it (hidepid): its identity cannot be checked.
    return byHeartbeat(`held by ${who} (not visible in /proc)`);
  }
  if (state.state === "Z" || state.state === "X") return { stale: true, why: `${who} is a zombie` };
  if (owner.startTime !== state.startTime) {
    return { stale: true, why: `process ${owner.pid} is another process than the one that took the lock` };
  }
  return { stale: false, why: `held by ${who}` };
}

/** Puts the file `content` at `path` atomically; false if a lock is there already. */
async function place(path: string, content: string): Promise<boolean> {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  await writeFile(temporary, content, { mode: 0o600, flag: "wx" });
  try {
    await link(temporary, path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw error;
    // A filesystem without hard links: exclusive create, then write (a reader may see it empty
    // for a moment; an empty lock is judged by its age).
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, "wx", 0o600);
    } catch (createError) {
      if ((createError as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw createError;
    }
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
    return true;
  } finally {
    await unlink(temporary).catch(() => undefined);
  }
}

/** Removes the stale lock `raw` at `path`, unless someone replaced it meanwhile. */
async function removeStale(path: string, raw: string): Promise<void> {
  const aside = `${path}.stale-${randomBytes(6).toString("hex")}`;
  try {
    await rename(path, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  const moved = await readFile(aside, "utf8").catch(() => undefined);
  if (moved !== undefined && moved !== raw) {
    // A fresh lock taken by another process since we looked: put it back.
    await link(aside, path).catch(() => undefined);
  }
  await unlink(aside).catch(() => undefined);
}

/**
 * Takes the lock at `path`: creates it naming this process, or takes over a stale one (its owner
 * is gone, a zombie, another process under the same PID, from before a reboot, or silent for
 * staleMs). A lock held by a live owner is waited for up to `waitMs`, then refused with
 * FileLockedError naming the owner.
 */
export async function acquireFileLock(file: string, options: FileLockOptions = {}): Promise<FileLock> {
  const path = resolve(file);
  const staleMs = options.staleMs ?? defaultStaleMs;
  const deadline = Date.now() + (options.waitMs ?? 0);
  const self = await identifySelf();
  const owner: FileLockOwner = { ...self, acquiredAt: new Date().toISOString() };
  // The nonce makes every lock's content unique, so "is it still mine" is a string comparison.
  const content = `${JSON.stringify({ ...owner, nonce: randomBytes(8).toString("hex") })}\n`;

  markHeld(path, content, true);
  releaseAllOnExit();
  for (;;) {
    let placed: boolean;
    try {
      placed = await place(path, content);
    } catch (error) {
      markHeld(path, content, false);
      throw error;
    }
    if (placed) break;
    let raw: string;
    let mtimeMs: number;
    try {
      [raw, mtimeMs] = await Promise.all([readFile(path, "utf8"), stat(path).then((info) => info.mtimeMs)]);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue; // released meanwhile
      markHeld(path, content, false);
      throw error;
    }
    const verdict = await judge(path, raw, mtimeMs, staleMs);
    if (verdict.stale) {
      await removeStale(path, raw);
      continue;
    }
    if (Date.now() >= deadline) {
      markHeld(path, content, false);
      throw new FileLockedError(path, parseLock(raw).owner, verdict.why, options.purpose);
    }
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }

  const heartbeat = setInterval(
    () => {
      const now = new Date();
      utimes(path, now, now).catch(() => undefined);
    },
    Math.max(1000, Math.floor(staleMs / 3)),
  );
  heartbeat.unref();
  let released: Promise<void> | undefined;
  return {
    path,
    owner,
    release() {
      released ??= (async () => {
        clearInterval(heartbeat);
        const current = await readFile(path, "utf8").catch(() => undefined);
        if (current === content) await unlink(path).catch(() => undefined);
        markHeld(path, content, false);
      })();
      return released;
    },
  };
}
