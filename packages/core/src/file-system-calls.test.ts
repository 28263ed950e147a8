// The two ways a durable writer makes its calls must write the same bytes and fail the same way.
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { syncDirectory } from "./directory-sync.ts";
import { fileSystemCalls, writeFileDurably } from "./file-system-calls.ts";

const { O_WRONLY, O_CREAT, O_EXCL } = constants;
let base: string;
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), "postern-fs-calls-"));
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe.each(["inline", "pool"] as const)("file system calls, %s metadata", (metadata) => {
  const calls = fileSystemCalls(metadata);

  it("says which it is", () => {
    expect(calls.metadata).toBe(metadata);
  });

  it("writes every buffer, in order, byte for byte (several MB in many pieces)", async () => {
    const pieces = Array.from({ length: 300 }, (_, n) => randomBytes(1 + ((n * 7919) % 40_000)));
    const path = join(base, `${metadata}-many`);
    await writeFileDurably(calls, path, [...pieces, Buffer.alloc(0)], O_WRONLY | O_CREAT | O_EXCL);
    expect((await readFile(path)).equals(Buffer.concat(pieces))).toBe(true);
  });

  it("rejects (never throws synchronously) when the file exists, and when the directory is missing", async () => {
    const path = join(base, `${metadata}-once`);
    await writeFileDurably(calls, path, [Buffer.from("first")], O_WRONLY | O_CREAT | O_EXCL);
    const again = writeFileDurably(calls, path, [Buffer.from("second")], O_WRONLY | O_CREAT | O_EXCL);
    await expect(again).rejects.toMatchObject({ code: "EEXIST" });
    expect(await readFile(path, "utf8")).toBe("first");
    const missing = writeFileDurably(calls, join(base, "nowhere", "x"), [Buffer.from("x")], O_WRONLY | O_CREAT);
    await expect(missing).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("renames, links, unlinks and fsyncs a directory", async () => {
    const from = join(base, `${metadata}-from`);
    await writeFileDurably(calls, from, [Buffer.from("moved")], O_WRONLY | O_CREAT | O_EXCL);
    await calls.link(from, join(base, `${metadata}-linked`));
    await calls.rename(from, join(base, `${metadata}-to`));
    await syncDirectory(base, calls);
    expect(await readFile(join(base, `${metadata}-to`), "utf8")).toBe("moved");
    expect(await readFile(join(base, `${metadata}-linked`), "utf8")).toBe("moved");
    await calls.unlink(join(base, `${metadata}-linked`));
    await expect(calls.unlink(join(base, `${metadata}-linked`))).rejects.toMatchObject({ code: "ENOENT" });
    await expect(calls.rename(from, join(base, "x"))).rejects.toMatchObject({ code: "ENOENT" });
  });
});
