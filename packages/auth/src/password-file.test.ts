// The password file and its hashes, on a real file system: PHC hashes, atomic 0600 writes, the
// lock, and the failure floor's client keys.
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { clientKey, FailureFloor } from "./failure-floor.ts";
import { PasswordFile, readPasswordFile, updatePasswordFile } from "./password-file.ts";
import { argon2Available, decoyFor, hashPassword, parseHash, verifyPassword } from "./password-hash.ts";

/** Core's lock module, run by child processes that play another `postern user` command. */
const fileLockModule = fileURLToPath(new URL("../../core/src/file-lock.ts", import.meta.url));

describe("password hashes", () => {
  it("scrypt: hashes in PHC format and verifies", async () => {
    const hash = await hashPassword("correct horse", { cost: 10 });
    expect(hash).toMatch(/^\$scrypt\$ln=10,r=8,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await verifyPassword("correct horse", hash)).toBe(true);
    expect(await verifyPassword("correct horsE", hash)).toBe(false);
    expect(await verifyPassword("", hash)).toBe(false);
  });

  it("reads scrypt hashes made elsewhere (Python's hashlib.scrypt, UTF-8 password)", async () => {
    const fromPython = "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$W/Rtq72Htgcz3Syd3hrCAGsXSEqmMzUBgphIKWl53WE";
    expect(await verifyPassword("pässword", fromPython)).toBe(true);
    expect(await verifyPassword("password", fromPython)).toBe(false);
  });

  it("argon2id where node:crypto has it", async () => {
    if (!argon2Available()) {
      await expect(hashPassword("x", { scheme: "argon2id" })).rejects.toMatchObject({
        code: "POSTERN_AUTH_HASH_UNSUPPORTED",
      });
      return;
    }
    const hash = await hashPassword("correct horse", { scheme: "argon2id" });
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(await verifyPassword("correct horse", hash)).toBe(true);
    expect(await verifyPassword("wrong", hash)).toBe(false);
  });

  it("a decoy has the model's cost and matches no password", async () => {
    const model = await hashPassword("secret", { cost: 10 });
    const decoy = decoyFor(model);
    expect(parseHash(decoy)).toMatchObject({ scheme: "scrypt", ln: 10, r: 8, p: 1 });
    expect(await verifyPassword("secret", decoy)).toBe(false);
    expect(parseHash(decoyFor(undefined))).toMatchObject({ scheme: "scrypt", ln: 15 });
  });

  it("refuses hashes it cannot or should not use", () => {
    expect(parseHash("secret")).toBeUndefined();
    expect(
      parseHash("$scrypt$ln=30,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$W/Rtq72Htgcz3Syd3hrCAGsXSEqmMzUBgphIKWl53WE"),
    ).toBeUndefined();
    expect(parseHash("$6$rounds=5000$salt$hash")).toBeUndefined();
  });
});

describe("the password file", () => {
  it("keeps comments and order, lower-cases names, refuses duplicates and bad lines", () => {
    const text =
      "# users\n\nAlice@Example.org:$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$W/Rtq72Htgcz3Syd3hrCAGsXSEqmMzUBgphIKWl53WE\n";
    const file = PasswordFile.parse(text, "passwd");
    expect(file.users()).toEqual(["alice@example.org"]);
    expect(file.get("ALICE@example.org")).toMatch(/^\$scrypt\$/);
    file.set("bob", "$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$W/Rtq72Htgcz3Syd3hrCAGsXSEqmMzUBgphIKWl53WE");
    expect(file.delete("alice@example.org")).toBe(true);
    expect(file.delete("alice@example.org")).toBe(false);
    expect(file.toString()).toBe(
      "# users\n\nbob:$scrypt$ln=10,r=8,p=1$AAECAwQFBgcICQoLDA0ODw$W/Rtq72Htgcz3Syd3hrCAGsXSEqmMzUBgphIKWl53WE\n",
    );

    expect(() => PasswordFile.parse(`${text}alice@example.org:${file.get("bob")}\n`, "passwd")).toThrow(
      'passwd:4: "alice@example.org" is listed twice',
    );
    expect(() => PasswordFile.parse("no separator here\n", "passwd")).toThrow('passwd:1: expected "name:hash"');
    expect(() => file.set("has space", "x")).toThrow(/cannot be a user name/);
  });

  it("writes atomically with mode 0600 under a lock, leaving no temporary files", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-passwd-"));
    const path = join(dir, "passwd");
    const previousMask = process.umask(0o022);
    try {
      await updatePasswordFile(path, (file) => file.set("carol", decoyFor(undefined)), { create: true });
    } finally {
      process.umask(previousMask);
    }
    const first = await stat(path);
    expect(first.mode & 0o777).toBe(0o600);
    await updatePasswordFile(path, (file) => file.set("dave", decoyFor(undefined)));
    const second = await stat(path);
    // A new inode: the old file was replaced whole by rename, never rewritten in place.
    expect(second.ino).not.toBe(first.ino);
    expect(second.mode & 0o777).toBe(0o600);
    expect((await readPasswordFile(path)).users()).toEqual(["carol", "dave"]);
    expect(await readdir(dir)).toEqual(["passwd"]);
  });

  it("refuses to change the file while another command holds the lock, naming it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-passwd-lock-"));
    const path = join(dir, "passwd");
    await writeFile(path, "");
    // Another live `postern user` command: a child process that holds the lock until told to go.
    const holder = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { acquireFileLock } from ${JSON.stringify(fileLockModule)};
         const lock = await acquireFileLock(${JSON.stringify(`${path}.lock`)});
         console.log("locked");
         process.stdin.once("data", async () => { await lock.release(); process.exit(0); });`,
      ],
      { stdio: ["pipe", "pipe", "inherit"] },
    );
    await new Promise((resolve) => holder.stdout.once("data", resolve));
    await expect(
      updatePasswordFile(path, (file) => file.set("erin", decoyFor(undefined)), { lockWaitMs: 0 }),
    ).rejects.toMatchObject({
      code: "POSTERN_AUTH_PASSWORD_FILE_LOCKED",
      message: expect.stringContaining(`held by process ${holder.pid}`),
    });
    expect(await readFile(path, "utf8")).toBe("");
    // A command that waits gets the lock once the holder is done.
    const waiting = updatePasswordFile(path, (file) => file.set("erin", decoyFor(undefined)));
    holder.stdin.write("done\n");
    await waiting;
    expect((await readPasswordFile(path)).users()).toEqual(["erin"]);
  });

  it("takes over a lock left by a command that was killed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-passwd-stale-"));
    const path = join(dir, "passwd");
    await writeFile(path, "");
    const killed = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { acquireFileLock } from ${JSON.stringify(fileLockModule)};
         await acquireFileLock(${JSON.stringify(`${path}.lock`)});
         process.kill(process.pid, "SIGKILL");`,
      ],
      { stdio: "ignore" },
    );
    await new Promise((resolve) => killed.once("exit", resolve));
    expect((await stat(`${path}.lock`)).isFile()).toBe(true);
    await updatePasswordFile(path, (file) => file.set("erin", decoyFor(undefined)), { lockWaitMs: 0 });
    expect((await readPasswordFile(path)).users()).toEqual(["erin"]);
    expect(await readdir(dir)).toEqual(["passwd"]);
  });

  it("does not write when the change fails", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-passwd-fail-"));
    const path = join(dir, "passwd");
    await writeFile(path, "# keep me\n");
    await expect(
      updatePasswordFile(path, () => {
        throw new Error("nope");
      }),
    ).rejects.toThrow("nope");
    expect(await readFile(path, "utf8")).toBe("# keep me\n");
    expect(await readdir(dir)).toEqual(["passwd"]);
  });
});

describe("the failure floor", () => {
  it("counts IPv4 alone, IPv4-mapped as IPv4, IPv6 per /64", () => {
    expect(clientKey("192.0.2.7")).toBe("192.0.2.7");
    expect(clientKey("::ffff:192.0.2.7")).toBe("192.0.2.7");
    expect(clientKey("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(clientKey("2001:DB8:1:2:bbbb:cccc:dddd:eeee")).toBe("2001:db8:1:2::/64");
    expect(clientKey("2001:db8::1")).toBe("2001:db8::/64");
    expect(clientKey("fe80::1%eth0")).toBe("fe80::/64");
  });

  it("locks a client out after the limit until the window ends", () => {
    let now = 1_000_000;
    const floor = new FailureFloor({ perClient: 2, windowSeconds: 60 }, () => now);
    floor.recordFailure("2001:db8:1:2::1");
    expect(floor.isLockedOut("2001:db8:1:2::99")).toBe(false);
    floor.recordFailure("2001:db8:1:2::2");
    expect(floor.isLockedOut("2001:db8:1:2::99")).toBe(true);
    expect(floor.isLockedOut("192.0.2.1")).toBe(false);
    now += 60_000;
    expect(floor.isLockedOut("2001:db8:1:2::99")).toBe(false);
  });
});
