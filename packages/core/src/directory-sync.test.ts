// The group-commit barrier on its own, with a stand-in for fsync that records when each one
// started and ended, so the one property that matters can be checked for every caller: its
// promise resolves only after an fsync that began after its call has ended.
import { describe, expect, it } from "vitest";
import { DirectorySync } from "./directory-sync.ts";

/** A controllable fsync: each call waits until released; the log says what happened in which order. */
function gatedSync() {
  const log: string[] = [];
  const pending: { directory: string; release(error?: Error): void }[] = [];
  const sync = (directory: string) =>
    new Promise<void>((resolve, reject) => {
      log.push(`start ${directory}`);
      pending.push({
        directory,
        release(error) {
          log.push(`end ${directory}`);
          if (error) reject(error);
          else resolve();
        },
      });
    });
  /** Ends the oldest fsync still running (optionally failing it) and lets callbacks run. */
  const releaseNext = async (error?: Error) => {
    pending.shift()!.release(error);
    for (let turn = 0; turn < 5; turn++) await Promise.resolve();
  };
  return { log, pending, sync, releaseNext };
}

const settle = async () => {
  for (let turn = 0; turn < 5; turn++) await Promise.resolve();
};

describe("DirectorySync", () => {
  it("covers callers that came while an fsync ran with one more fsync, started after them", async () => {
    const gate = gatedSync();
    const barrier = new DirectorySync(gate.sync);
    const resolved: string[] = [];
    const ask = (name: string) => {
      gate.log.push(`call ${name}`);
      return barrier.sync("/m/new").then(() => {
        gate.log.push(`resolved ${name}`);
        resolved.push(name);
      });
    };

    const first = ask("a"); // starts fsync 1 at once
    await settle();
    const later = ["b", "c", "d", "e"].map(ask); // arrive while fsync 1 runs: share fsync 2
    await settle();
    expect(gate.pending).toHaveLength(1);

    await gate.releaseNext(); // fsync 1 ends: a is covered; fsync 2 starts for b–e
    expect(resolved).toEqual(["a"]);
    expect(gate.pending).toHaveLength(1);
    const lateComer = ask("f"); // arrives during fsync 2: needs fsync 3
    await gate.releaseNext();
    expect(resolved.sort()).toEqual(["a", "b", "c", "d", "e"]);
    await gate.releaseNext();
    await Promise.all([first, ...later, lateComer]);
    expect(barrier.fsyncs).toBe(3);
    expect(gate.pending).toHaveLength(0);

    // The property, for every caller: an fsync started after its call and ended before it resolved.
    for (const name of ["a", "b", "c", "d", "e", "f"]) {
      const called = gate.log.indexOf(`call ${name}`);
      const done = gate.log.indexOf(`resolved ${name}`);
      const covering = gate.log.some(
        (entry, index) =>
          entry === "start /m/new" &&
          index > called &&
          gate.log.indexOf("end /m/new", index) !== -1 &&
          gate.log.indexOf("end /m/new", index) < done,
      );
      expect(covering, `${name}: ${gate.log.join(", ")}`).toBe(true);
    }
  });

  it("keeps directories apart: each has its own fsync", async () => {
    const gate = gatedSync();
    const barrier = new DirectorySync(gate.sync);
    const both = Promise.all([barrier.sync("/a/new"), barrier.sync("/b/new")]);
    await settle();
    expect(gate.pending.map((entry) => entry.directory).sort()).toEqual(["/a/new", "/b/new"]);
    await gate.releaseNext();
    await gate.releaseNext();
    await both;
  });

  it("fails every caller of a failed fsync, and only them; the next batch is fsynced again", async () => {
    const gate = gatedSync();
    const barrier = new DirectorySync(gate.sync);
    const first = barrier.sync("/m/new");
    await settle();
    const batch = [barrier.sync("/m/new"), barrier.sync("/m/new")];
    await gate.releaseNext(); // fsync 1 succeeds
    await expect(first).resolves.toBeUndefined();
    await gate.releaseNext(new Error("EIO")); // fsync 2 (the batch) fails
    for (const caller of batch) await expect(caller).rejects.toThrow("EIO");
    const after = barrier.sync("/m/new");
    await settle();
    await gate.releaseNext();
    await expect(after).resolves.toBeUndefined();
    expect(barrier.fsyncs).toBe(3);
  });
});
