import { createPrivateKey, createPublicKey } from "node:crypto";
import { describe, expect, it } from "vitest";
import { formatTxtRecord, generateDkimKey, splitTxtValue } from "./keygen.ts";

describe("generateDkimKey", () => {
  it("makes a 2048-bit RSA key whose record needs strings of at most 255 octets", () => {
    const key = generateDkimKey();
    expect(createPrivateKey(key.privateKeyPem).asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(key.record).toBe(`v=DKIM1; k=rsa; p=${key.publicKey}`);
    const parts = splitTxtValue(key.record);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.every((part) => Buffer.byteLength(part) <= 255)).toBe(true);
    expect(parts.join("")).toBe(key.record);
    const zone = formatTxtRecord("example.com", "s2026", key.record);
    expect(zone.split("\n")[0]).toBe("s2026._domainkey.example.com. IN TXT (");
    expect(zone.match(/"[^"]*"/g)?.map((quoted) => quoted.slice(1, -1))).toEqual(parts);
    // The p= value is the public half of the private key.
    const publicDer = createPublicKey(key.privateKeyPem).export({ format: "der", type: "spki" });
    expect(key.publicKey).toBe(publicDer.toString("base64"));
  });

  it("makes an Ed25519 key published as the raw 32-byte key (RFC 8463)", () => {
    const key = generateDkimKey({ algorithm: "ed25519" });
    expect(createPrivateKey(key.privateKeyPem).asymmetricKeyType).toBe("ed25519");
    expect(Buffer.from(key.publicKey, "base64")).toHaveLength(32);
    expect(key.record).toBe(`v=DKIM1; k=ed25519; p=${key.publicKey}`);
    expect(formatTxtRecord("example.com.", "ed1", key.record)).toBe(
      `ed1._domainkey.example.com. IN TXT "${key.record}"`,
    );
  });

  it("refuses RSA sizes below 1024 bits", () => {
    expect(() => generateDkimKey({ bits: 512 })).toThrow(/1024–8192/);
  });
});
