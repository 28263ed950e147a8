// SRS on its own (format, rotation, expiry, SRS1), then against Debian's postsrsd: each side
// reverses what the other forwards.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSrs, isSrsLocalPart } from "./srs.ts";
import { type Postsrsd, startPostsrsd } from "./test-postsrsd.ts";

const day = 86_400_000;

describe("SRS", () => {
  const srs = createSrs({ domain: "fwd.example", secrets: ["first-secret"] });

  it("rewrites a sender into SRS0 in our domain and reverses it", () => {
    const rewritten = srs.forward("Alice@Origin.example");
    expect(rewritten).toMatch(/^SRS0=[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=Origin\.example=Alice@fwd\.example$/);
    expect(srs.reverse(rewritten)).toEqual({ kind: "reversed", address: "Alice@Origin.example" });
    // Case-smashing MTAs on the way back do not break it.
    expect(srs.reverse(rewritten.toLowerCase())).toEqual({ kind: "reversed", address: "alice@origin.example" });
  });

  it("leaves the null sender and our own domain alone", () => {
    expect(srs.forward("")).toBe("");
    expect(srs.forward("bob@FWD.example")).toBe("bob@FWD.example");
  });

  it("turns another forwarder's SRS0 into SRS1 that reverses to that forwarder's address", () => {
    const first = createSrs({ domain: "first.example", secrets: ["another-secret"] });
    const once = first.forward("alice@origin.example");
    const twice = srs.forward(once);
    expect(twice).toMatch(
      /^SRS1=[A-Za-z0-9+/]{4}=first\.example==[A-Za-z0-9+/]{4}=[A-Z2-7]{2}=origin\.example=alice@fwd\.example$/,
    );
    const back = srs.reverse(twice);
    expect(back).toEqual({ kind: "reversed", address: once });
    expect(first.reverse(once)).toEqual({ kind: "reversed", address: "alice@origin.example" });
    // A third forwarder keeps the first forwarder's host and re-signs.
    const third = createSrs({ domain: "third.example", secrets: ["third-secret"] }).forward(twice);
    expect(third).toMatch(/^SRS1=[A-Za-z0-9+/]{4}=first\.example==.*@third\.example$/);
  });

  it("refuses a forged hash, a changed address and a broken shape", () => {
    const rewritten = srs.forward("alice@origin.example");
    const [, hash] = /^SRS0=([^=]+)=/.exec(rewritten)!;
    const forged = rewritten.replace(hash!, hash === "AAAA" ? "BBBB" : "AAAA");
    expect(srs.reverse(forged)).toEqual({ kind: "invalid", reason: "hash" });
    expect(srs.reverse(rewritten.replace("=alice@", "=mallory@"))).toEqual({ kind: "invalid", reason: "hash" });
    expect(srs.reverse("SRS0=abcd=AB@fwd.example")).toEqual({ kind: "invalid", reason: "syntax" });
    expect(srs.reverse("alice@fwd.example")).toEqual({ kind: "not-srs" });
    expect(isSrsLocalPart("srs0+x")).toBe(true);
    expect(isSrsLocalPart("srs2=x")).toBe(false);
  });

  it("expires addresses after maxAgeDays, across the 1024-day wrap of the timestamp", () => {
    let now = 1_023 * day + day / 2; // the last day before the 2-character stamp wraps
    const clocked = createSrs({ domain: "fwd.example", secrets: ["first-secret"], maxAgeDays: 21, now: () => now });
    const rewritten = clocked.forward("alice@origin.example");
    now += 21 * day;
    expect(clocked.reverse(rewritten).kind).toBe("reversed");
    now += day;
    expect(clocked.reverse(rewritten)).toEqual({ kind: "invalid", reason: "expired" });
  });

  it("rotates keys: signs with the first, accepts every listed one", () => {
    const old = createSrs({ domain: "fwd.example", secrets: ["old-secret"] });
    const rotated = createSrs({ domain: "fwd.example", secrets: ["new-secret", "old-secret"] });
    const retired = createSrs({ domain: "fwd.example", secrets: ["new-secret"] });
    const before = old.forward("alice@origin.example");
    const after = rotated.forward("alice@origin.example");
    expect(rotated.reverse(before).kind).toBe("reversed");
    expect(retired.reverse(after).kind).toBe("reversed");
    expect(retired.reverse(before)).toEqual({ kind: "invalid", reason: "hash" });
    expect(old.reverse(after)).toEqual({ kind: "invalid", reason: "hash" });
  });

  it("accepts longer hashes down to hashMinLength and refuses shorter ones", () => {
    const long = createSrs({ domain: "fwd.example", secrets: ["s3cret-s3cret"], hashLength: 8, hashMinLength: 6 });
    const rewritten = long.forward("alice@origin.example");
    const [, hash] = /^SRS0=([^=]+)=/.exec(rewritten)!;
    expect(hash).toHaveLength(8);
    expect(long.reverse(rewritten.replace(`=${hash}=`, `=${hash!.slice(0, 6)}=`)).kind).toBe("reversed");
    expect(long.reverse(rewritten.replace(`=${hash}=`, `=${hash!.slice(0, 5)}=`))).toEqual({
      kind: "invalid",
      reason: "hash",
    });
  });
});

describe("SRS interoperates with Debian's postsrsd (TCP lookup tables)", () => {
  let postsrsd: Postsrsd;
  const secrets = ["tops3cret-new", "tops3cret-old"];
  beforeAll(async () => {
    postsrsd = await startPostsrsd({ domain: "fwd.example", secrets });
  });
  afterAll(async () => {
    await postsrsd?.stop();
  });

  const senders = [
    "alice@origin.example",
    "Bob.Smith@Mixed.Case.example",
    "a+tag=x@sub.origin.example",
    "o'neil@origin.example",
  ];

  it("writes exactly what postsrsd writes for SRS0 and SRS1", async () => {
    const ours = createSrs({ domain: "fwd.example", secrets });
    for (const sender of [...senders, "SRS0=abcd=AB=orig.example=alice@first.example"]) {
      const theirs = await postsrsd.forward(sender);
      expect(theirs.code).toBe(200);
      expect(ours.forward(sender)).toBe(theirs.value);
    }
  });

  it("reverses what postsrsd forwards, and postsrsd reverses what we forward", async () => {
    const ours = createSrs({ domain: "fwd.example", secrets });
    for (const sender of senders) {
      const theirs = await postsrsd.forward(sender);
      expect(ours.reverse(theirs.value)).toEqual({ kind: "reversed", address: sender });
      expect(await postsrsd.reverse(ours.forward(sender))).toEqual({ code: 200, value: sender });
    }
    const srs1 = ours.forward("SRS0=abcd=AB=orig.example=alice@first.example");
    expect(await postsrsd.reverse(srs1)).toEqual({ code: 200, value: "SRS0=abcd=AB=orig.example=alice@first.example" });
  });

  it("agrees on key rotation and on what is forged", async () => {
    // Signed with the second (older) key only: both sides accept it.
    const oldOnly = createSrs({ domain: "fwd.example", secrets: ["tops3cret-old"] });
    const byOldKey = oldOnly.forward("alice@origin.example");
    expect((await postsrsd.reverse(byOldKey)).code).toBe(200);
    // Signed with a key neither side lists: both refuse it.
    const stranger = createSrs({ domain: "fwd.example", secrets: ["not-our-secret"] }).forward("alice@origin.example");
    expect((await postsrsd.reverse(stranger)).code).toBe(500);
    expect(createSrs({ domain: "fwd.example", secrets }).reverse(stranger)).toEqual({
      kind: "invalid",
      reason: "hash",
    });
  });

  it("matches postsrsd with another separator", async () => {
    const plus = await startPostsrsd({ domain: "fwd.example", secrets, separator: "+" });
    try {
      const ours = createSrs({ domain: "fwd.example", secrets, separator: "+" });
      const theirs = await plus.forward("alice@origin.example");
      expect(theirs.value).toMatch(/^SRS0\+/);
      expect(ours.forward("alice@origin.example")).toBe(theirs.value);
      expect(ours.reverse(theirs.value).kind).toBe("reversed");
    } finally {
      await plus.stop();
    }
  });
});
