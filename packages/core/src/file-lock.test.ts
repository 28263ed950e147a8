// Locks that cannot outlive their owner: real processes (sleep, a zombie, a child Node process)
// are named in lock files, and acquireFileLock must tell the live owner from everything else.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, readlink, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { acquireFileLock, type FileLock, FileLockedError } from "./file-lock.ts";

const bootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
const otherBootId = "00000000-0000-4000-8000-000000000000";
const pidNamespace = await readlink("/proc/self/ns/pid");
const moduleFile = fileURLToPath(new URL("./file-lock.ts", import.meta.url));

const dirs: string[] = [];
const children: ChildProcess[] = [];
const locks: FileLock[] = [];

afterEach(async () => {
  for (const lock of locks.splice(0)) await lock.release();
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill();
});
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function lockPath(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "postern-file-lock-"));
  dirs.push(dir);
  return join(dir, "lock");
}

async function acquire(path: string, options?: Parameters<typeof acquireFileLock>[1]): Promise<FileLock> {
  const lock = await acquireFileLock(path, options);
  locks.push(lock);
  return lock;
}

function stateOf(pid: number): { state: string; startTime: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0]!, startTime: fields[19]! };
  } catch {
    return undefined;
  }
}

/** A live process unrelated to any lock. */
async function sleeper(): Promise<number> {
  const child = spawn("sleep", ["60"], { stdio: "ignore" });
  children.push(child);
  await new Promise((resolve) => child.once("spawn", resolve));
  return child.pid!;
}

/** A lock file as acquireFileLock writes it, naming `pid` with the given identity. */
async function writeLock(path: string, fields: Record<string, unknown>): Promise<void> {
  await writeFile(
    path,
    `${JSON.stringify({ hostname: "elsewhere.test", acquiredAt: "2026-01-01T00:00:00Z", ...fields })}\n`,
  );
}

describe("acquireFileLock", () => {
  it("writes who holds it (boot id, PID, start time) and removes the file on release", async () => {
    const path = await lockPath();
    const lock = await acquire(path);
    const recorded = JSON.parse(await readFile(path, "utf8"));
    expect(recorded).toMatchObject({
      pid: process.pid,
      bootId,
      startTime: stateOf(process.pid)!.startTime,
      pidNamespace,
    });
    await lock.release();
    await expect(stat(path)).rejects.toMatchObject({ code: "ENOENT" });
    // Nothing else is left beside it (no temporary files).
    expect(await readdir(join(path, ".."))).toEqual([]);
  });

  it("refuses a second holder in the same process until the first releases", async () => {
    const path = await lockPath();
    const first = await acquire(path);
    await expect(acquireFileLock(path, { purpose: "the test spool" })).rejects.toThrow(
      /^the test spool is locked: held by this process/,
    );
    await first.release();
    await acquire(path);
  });

  it("refuses a lock held by a live owner, naming it, and waits for it with waitMs", async () => {
    const path = await lockPath();
    const pid = await sleeper();
    await writeLock(path, { pid, bootId, startTime: stateOf(pid)!.startTime, pidNamespace });
    const refusal = await acquireFileLock(path).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(FileLockedError);
    expect((refusal as FileLockedError).code).toBe("POSTERN_FILE_LOCKED");
    expect((refusal as FileLockedError).owner?.pid).toBe(pid);
    expect((refusal as Error).message).toContain(`held by process ${pid} on elsewhere.test since 2026-01-01T00:00:00Z`);
    expect(JSON.parse(await readFile(path, "utf8")).pid).toBe(pid);

    // The owner lets go while a second caller waits: the waiter gets the lock.
    const waiting = acquire(path, { waitMs: 20_000 });
    setTimeout(() => void rm(path), 200);
    expect((await waiting).owner.pid).toBe(process.pid);
  });

  it("takes over a lock naming a live unrelated process from another boot", async () => {
    const path = await lockPath();
    const pid = await sleeper();
    await writeLock(path, { pid, bootId: otherBootId, startTime: stateOf(pid)!.startTime, pidNamespace });
    await acquire(path);
    expect(JSON.parse(await readFile(path, "utf8")).pid).toBe(process.pid);
  });

  it("takes over a lock naming a live process that started at another time (PID reused)", async () => {
    const path = await lockPath();
    const pid = await sleeper();
    const startTime = String(Number(stateOf(pid)!.startTime) - 12_345);
    await writeLock(path, { pid, bootId, startTime, pidNamespace });
    await acquire(path);
    expect(JSON.parse(await readFile(path, "utf8")).pid).toBe(process.pid);
  });

  it("takes over a lock whose owner is a zombie (exited, never reaped)", async () => {
    const path = await lockPath();
    // The shell starts a short child, prints its PID, and becomes `sleep`, which never reaps it.
    const parent = spawn("sh", ["-c", "sleep 0.05 & echo $!; exec sleep 60"], { stdio: ["ignore", "pipe", "ignore"] });
    children.push(parent);
    const zombie = Number(
      await new Promise<string>((resolve) => parent.stdout!.once("data", (chunk: Buffer) => resolve(String(chunk)))),
    );
    const startTime = stateOf(zombie)!.startTime;
    for (let waited = 0; stateOf(zombie)?.state !== "Z"; waited += 10) {
      if (waited > 10_000) throw new Error(`process ${zombie} did not become a zombie`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // kill(pid, 0) still succeeds on a zombie: that is what a PID-only lock got wrong.
    expect(() => process.kill(zombie, 0)).not.toThrow();
    await writeLock(path, { pid: zombie, bootId, startTime, pidNamespace });
    await acquire(path);
    expect(JSON.parse(await readFile(path, "utf8")).pid).toBe(process.pid);
  });

  it("takes over a lock whose owner is gone", async () => {
    const path = await lockPath();
    const child = spawn("true");
    const pid = child.pid!;
    await new Promise((resolve) => child.once("exit", resolve));
    await writeLock(path, { pid, bootId, startTime: "1", pidNamespace });
    await acquire(path);
  });

  it("judges a lock from another PID namespace by its heartbeat", async () => {
    const path = await lockPath();
    await writeLock(path, { pid: 1, bootId, startTime: "1", pidNamespace: "pid:[1]" });
    await expect(acquireFileLock(path)).rejects.toThrow(
      /in another PID namespace \(pid:\[1\]\); its heartbeat is 0 s old/,
    );
    const longAgo = new Date(Date.now() - 60_000);
    await utimes(path, longAgo, longAgo);
    await acquire(path);
  });

  it("judges a lock of an older Postern (a bare PID) by when its process started", async () => {
    const path = await lockPath();
    // PID 1 started before the file was written: it may be the writer.
    await writeFile(path, "1\n");
    await expect(acquireFileLock(path)).rejects.toThrow(/held by process 1/);
    // A process that started after the file was last written cannot have written it.
    const pid = await sleeper();
    await writeFile(path, `${pid}\n`);
    const before = new Date(Date.now() - 60_000);
    await utimes(path, before, before);
    await acquire(path);
  });

  it("keeps the heartbeat of a held lock fresh", async () => {
    const path = await lockPath();
    await acquire(path, { staleMs: 3000 });
    const longAgo = new Date(Date.now() - 60_000);
    await utimes(path, longAgo, longAgo);
    for (let waited = 0; (await stat(path)).mtimeMs < Date.now() - 30_000; waited += 50) {
      if (waited > 10_000) throw new Error("the heartbeat never touched the lock");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });

  it("lets exactly one of several concurrent callers take over a stale lock", async () => {
    const path = await lockPath();
    await writeLock(path, { pid: process.pid, bootId: otherBootId, startTime: "1", pidNamespace });
    const outcomes = await Promise.allSettled(Array.from({ length: 8 }, () => acquireFileLock(path)));
    const won = outcomes.filter((outcome) => outcome.status === "fulfilled");
    expect(won).toHaveLength(1);
    locks.push((won[0] as PromiseFulfilledResult<FileLock>).value);
    for (const outcome of outcomes) {
      if (outcome.status === "rejected") expect(outcome.reason).toBeInstanceOf(FileLockedError);
    }
  });

  it("is released when its process exits, and taken over after the process was killed", async () => {
    const path = await lockPath();
    const holder = (exit: string) =>
      new Promise<{ code: number | null; signal: string | null; stdout: string }>((resolve) => {
        const child = execFile(
          process.execPath,
          [
            "--input-type=module",
            "-e",
            `import { acquireFileLock } from ${JSON.stringify(moduleFile)};
             await acquireFileLock(${JSON.stringify(path)});
             console.log("locked");
             ${exit}`,
          ],
          (_error, stdout) => resolve({ code: child.exitCode, signal: child.signalCode, stdout }),
        );
      });
    const exited = await holder("process.exit(3);");
    expect(exited).toMatchObject({ code: 3, stdout: "locked\n" });
    await expect(stat(path)).rejects.toMatchObject({ code: "ENOENT" });

    const killed = await holder('process.kill(process.pid, "SIGKILL");');
    expect(killed).toMatchObject({ signal: "SIGKILL", stdout: "locked\n" });
    // SIGKILL runs no exit handler: the lock stays, naming a process that is gone.
    expect((await stat(path)).isFile()).toBe(true);
    await acquire(path);
  });
});
